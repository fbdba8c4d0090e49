"""Links to a citizen's preview, as the JSON API and the OOTS gateway hand them out."""

from __future__ import annotations

from fastapi import Request

from broker.db.models import Exchange
from broker.exchange.lifecycle import State
from broker.preview.service import Previews


def public_base(request: Request, public_url: str) -> str:
    """The broker's address as citizens and remote requesters reach it."""
    return (public_url.strip() or str(request.base_url)).rstrip("/")


def location(base: str, previews: Previews, exchange_id: str) -> str:
    """The absolute preview address of an exchange (the OOTS PreviewLocation)."""
    return base + previews.path(exchange_id)


def preview_path(previews: Previews, exchange: Exchange) -> str | None:
    """While the exchange awaits the citizen: the preview path (relative, like the API's other links)."""
    return previews.path(exchange.id) if exchange.state == State.AWAITING_PREVIEW else None
