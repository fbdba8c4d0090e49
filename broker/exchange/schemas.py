"""Request and response shapes of the exchange API (/v1/evidence-requests)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.identity import is_valid_idnr
from adapters.protocol import Subject
from broker.schemas_common import ApiModel


class SubjectIn(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        # What _identifiable checks, stated in the contract (the IDNr's check digit it cannot state).
        json_schema_extra={
            "anyOf": [
                {"required": ["idnr"], "properties": {"idnr": {"type": "string"}}},
                {
                    "required": ["family_name", "given_name", "birth_date"],
                    "properties": {
                        "family_name": {"type": "string"},
                        "given_name": {"type": "string"},
                        "birth_date": {"type": "string"},
                    },
                },
            ]
        },
    )

    idnr: str | None = Field(default=None, description="Identifikationsnummer (11 digits, check digit verified)")
    family_name: str | None = Field(default=None, min_length=1, max_length=200)
    given_name: str | None = Field(default=None, min_length=1, max_length=200)
    birth_date: date | None = None
    birth_place: str | None = Field(default=None, min_length=1, max_length=200)
    birth_name: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("idnr")
    @classmethod
    def _idnr_valid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.replace(" ", "")
        if not is_valid_idnr(digits):
            raise ValueError("idnr must be 11 digits with a valid check digit")
        return digits

    @model_validator(mode="after")
    def _identifiable(self) -> SubjectIn:
        if self.idnr is None and not (self.family_name and self.given_name and self.birth_date):
            raise ValueError("give idnr, or family_name, given_name and birth_date")
        return self

    def to_subject(self) -> Subject:
        return Subject(**self.model_dump())


class EvidenceRequestIn(ApiModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    evidence_type: str = Field(min_length=1, max_length=200, examples=["urn:de:nachweis:meldebescheinigung"])
    jurisdiction: str | None = Field(
        default=None, pattern=r"^[0-9]{2,12}$", description="ARS prefix (Regionalschlüssel), 2 to 12 digits"
    )
    subject: SubjectIn
    purpose: str = Field(
        min_length=1,
        max_length=300,
        description="A registered purpose: its id or exact name",
        examples=["Wohngeldantrag"],
    )
    legal_basis: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="A registered legal basis: its id or exact citation",
        examples=["§ 23 WoGG"],
    )
    explicit_request: bool = False
    # The id the broker gave the consent (a UUID): nothing else, so no text a caller chose can ride
    # along into the log.
    consent_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )
    preview: bool = False
    assurance: Literal["low", "substantial", "high"] | None = Field(
        default=None,
        description="eIDAS level of assurance at which the citizen authenticated to the online service; "
        "below the evidence type's minimum the request is refused",
    )
    callback_url: str | None = Field(default=None, pattern=r"^https?://", max_length=500)


class ProblemOut(BaseModel):
    status: int
    reason: str
    detail: str | None


class EvidenceLink(BaseModel):
    href: str
    media_type: str = "application/xml"
    digest: str


class ReceiptOut(BaseModel):
    # None until the integrator has given the delivery entry its index (within about a second).
    log_index: int | None = None
    leaf_hash: str
    tree_size: int | None = None
    inclusion_proof: list[str] | None = None
    checkpoint: str | None = None


class ExchangeOut(BaseModel):
    id: str
    state: str
    # Registry ids; None where the request named nothing registered (it was refused).
    evidence_type: str | None
    jurisdiction: str | None
    authority: str | None
    purpose: str | None
    legal_basis: str | None
    consent_id: str | None
    created_at: datetime
    updated_at: datetime
    evidence: EvidenceLink | None = None
    problem: ProblemOut | None = None
    receipt: ReceiptOut | None = None
    links: dict[str, Any] = {}
