"""Shapes of the adapter API (/v1/adapter): tasks handed to pull adapters and what they post back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class TaskOut(BaseModel):
    id: str
    lease_until: datetime = Field(description="Post the answer before this moment, or the task is handed out again")
    attempt: int
    query: dict[str, Any] = Field(
        description="The EvidenceQuery: request_id, evidence_type, authority_id, jurisdiction, subject"
    )
    links: dict[str, str]


class TaskList(BaseModel):
    tasks: list[TaskOut]


class AnswerOut(BaseModel):
    task: str
    exchange_state: str
    replayed: bool
