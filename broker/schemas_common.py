"""What every JSON model the broker reads has in common: hostile input is refused with a 422.

:class:`ApiModel` is the base of every request model (and of the registry document, which also
comes from files): unknown fields are refused first, and no text anywhere in it may carry a control
character (C0, DEL, C1), a lone surrogate, or an invisible formatting character (zero-width,
bidirectional override, line separator, noncharacter). Such characters are never part of a name, an
identifier or a purpose, and they break what comes after (PostgreSQL refuses NUL, UTF-8 encoding
refuses surrogates, log and page output would carry them). A field that legitimately spans lines
(a PEM key) is marked ``Annotated[str, MULTILINE]`` and may carry tab, line feed and carriage
return.

Numbers and moments are bounded where they reach the database or date arithmetic:
:data:`MAX_LOG_INDEX` for log indices and sizes, :data:`Moment` for timestamps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

# Invisible characters that only ever disguise text: zero-width and bidirectional controls (an
# "override" makes a name read differently than it is stored), line and paragraph separators,
# the byte order mark, interlinear annotations and noncharacters.
_INVISIBLE: Final = "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ufdd0-\ufdef\ufffe\uffff"
_CONTROL: Final = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff{_INVISIBLE}]")
_CONTROL_BUT_LINE_BREAKS: Final = re.compile(
    f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ud800-\\udfff{_INVISIBLE}]"
)

# Log indices and tree sizes are SQL BIGINTs (at most 2^63 - 1); the margin leaves room for the
# `index + 1` arithmetic of queries. No log of this broker comes near it.
MAX_LOG_INDEX: Final = 2**62


class Multiline:
    """Marks a text field that may span lines: ``Annotated[str, MULTILINE]``."""


MULTILINE: Final = Multiline()


def control_character_in(value: Any, multiline: bool = False) -> bool:
    """Whether any text in ``value`` (a string, or strings in lists and mappings) has a forbidden character."""
    if isinstance(value, str):
        return (_CONTROL_BUT_LINE_BREAKS if multiline else _CONTROL).search(value) is not None
    if isinstance(value, list | tuple | set | frozenset):
        return any(control_character_in(item, multiline) for item in value)
    if isinstance(value, dict):
        return any(control_character_in(k, multiline) or control_character_in(v, multiline) for k, v in value.items())
    # Nested models checked themselves; numbers, dates and the like hold no text.
    return False


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        # Refused before any field is validated, as one error: a body of thousands of unknown keys
        # would otherwise cost an error object each (pydantic's own `extra="forbid"` check).
        if not isinstance(data, dict):
            return data
        known = {name for name in cls.model_fields} | {f.alias for f in cls.model_fields.values() if f.alias}
        unknown = [key for key in data if key not in known]
        if not unknown:
            return data
        named = ", ".join(str(key)[:40] for key in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(f"unknown fields: {named}{more}")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        multiline = field is not None and any(isinstance(m, Multiline) for m in field.metadata)
        if control_character_in(value, multiline):
            allowed = " other than tab and line breaks" if multiline else ""
            raise ValueError(f"must not contain control characters{allowed}")
        return value


# A moment before this or after this is a typo or an attack, and near the ends of `datetime`
# converting it to UTC (or adding a day) overflows.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


# RFC 3339's date-time (section 5.6), the form the contract's ``format: date-time`` names; pydantic
# alone also takes a number of seconds, a bare date or a time without seconds as a timestamp.
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp such as 2026-11-26T18:00:00Z")
    return value


# The years Moment accepts, stated in the contract (JSON Schema has no range for dates).
_MOMENT_SCHEMA: Final = {"type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|[2-8][0-9]{3})-"}


def _bounded_utc(moment: datetime) -> datetime:
    # Checked on the wall-clock value first: converting a moment near year 1 or 9999 raises.
    if not EARLIEST.year <= moment.year < LATEST.year:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Moment = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_bounded_utc), WithJsonSchema(_MOMENT_SCHEMA)]
"""A timestamp between 1970 and 9000, in UTC (a time without an offset is read as UTC)."""

AwareMoment = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_bounded_utc), WithJsonSchema(_MOMENT_SCHEMA)
]
"""A :data:`Moment` that must state its offset (where a missing one is more likely a mistake than UTC)."""
