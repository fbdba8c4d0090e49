"""FastAPI dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from broker.clients.auth import authenticate
from broker.clients.service import Principal
from broker.context import BrokerContext


def get_context(request: Request) -> BrokerContext:
    return request.app.state.context


Context = Annotated[BrokerContext, Depends(get_context)]


def require(*roles: str) -> Callable[[Request, BrokerContext], Principal]:
    def dependency(request: Request, context: Context) -> Principal:
        return authenticate(request, context.principals, *roles)

    return dependency


Requester = Annotated[Principal, Depends(require("requester"))]
Auditor = Annotated[Principal, Depends(require("auditor", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
AdapterClient = Annotated[Principal, Depends(require("adapter"))]
