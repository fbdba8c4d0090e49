"""Response shapes of the audit API (hashes are standard base64 of the raw 32 bytes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class InclusionProofOut(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str] = Field(description="RFC 9162 inclusion path, leaf side first")


class ConsistencyProofOut(BaseModel):
    old_size: int
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 consistency proof")


class EntryOut(BaseModel):
    index: int
    leaf_hash: str
    entry: dict[str, Any] = Field(description="The entry as hashed: its canonical JSON (RFC 8785), parsed")


class EntriesPage(BaseModel):
    entries: list[EntryOut]
    tree_size: int = Field(description="Entries are listed up to this signed tree size")
    next: str | None = Field(default=None, description="The next page (keyset paging by log index)")
