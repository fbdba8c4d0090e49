"""The registry document: the TOML file format and the admin API's JSON are the same shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ArsPrefix = Field(pattern=r"^[0-9]{0,12}$", description="Regionalschlüssel prefix (ARS), up to 12 digits")


class EvidenceTypeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    title: str
    namespace: str
    root_element: str
    assurance_level: Literal["low", "substantial", "high"] = "substantial"
    oots_classifications: list[str] = []
    preview_required: bool = False


class AuthoritySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    name: str
    ars: str = ArsPrefix
    register_kind: Literal["melderegister", "standesamt", "gewerberegister"]
    binding: Literal["in_process", "http_push", "pull"] = "in_process"
    endpoint_url: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    public_key_pem: str | None = None

    @model_validator(mode="after")
    def _push_needs_endpoint(self) -> AuthoritySpec:
        if self.binding == "http_push" and not self.endpoint_url:
            raise ValueError(f"authority {self.id}: binding http_push needs endpoint_url")
        return self


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence_type: str
    ars_prefix: str = ArsPrefix
    authority: str


class RegistryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence_types: list[EvidenceTypeSpec] = []
    authorities: list[AuthoritySpec] = []
    routes: list[RouteSpec] = []

    @model_validator(mode="after")
    def _references_resolve(self) -> RegistryDocument:
        types = {t.id for t in self.evidence_types}
        authorities = {a.id for a in self.authorities}
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            if route.evidence_type not in types:
                raise ValueError(f"route {route.ars_prefix!r}: unknown evidence type {route.evidence_type}")
            if route.authority not in authorities:
                raise ValueError(f"route {route.ars_prefix!r}: unknown authority {route.authority}")
            key = (route.evidence_type, route.ars_prefix)
            if key in seen:
                raise ValueError(f"duplicate route for {route.evidence_type} at {route.ars_prefix!r}")
            seen.add(key)
        return self
