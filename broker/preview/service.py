"""Preview: evidence the authority issued is held until the citizen approves it, or discarded.

An exchange with ``preview`` set stops in ``awaiting_preview`` with the checked, unsealed
evidence held (``broker.exchange.service.hold_for_preview``), and a :class:`~broker.db.models.Preview`
opens. The citizen reaches it at ``/preview/{token}`` and signs in: only the exchange's
subject, at or above the evidence type's level of assurance and recently authenticated, sees
the evidence and decides (the link alone, which the requester holds too, shows nothing).
Approving seals and delivers the
evidence (the exchange continues exactly as without preview), declining rejects the exchange
and drops the evidence, and a preview nobody decides expires and drops it too.

Tokens: ``token = base64url(HMAC-SHA256(key, exchange id))`` with a key derived from the
broker's pseudonym secret. Only the token's SHA-256 is stored, so the database alone never
yields a working link, yet the broker can hand the same link out again (an idempotent replay
of the request, a later GET of the exchange) without keeping it. One preview per exchange;
a token decides once (single use) and only until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from broker import egress
from broker.citizen.identity import Citizen
from broker.citizen.service import access_refusal
from broker.clients import repository as clients
from broker.clock import Clock, as_utc
from broker.db.models import Exchange, Preview
from broker.exchange import lifecycle
from broker.exchange import repository as exchanges
from broker.exchange import service as exchange_service
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State
from broker.logging import get_logger
from broker.preview import repository
from broker.problems import Problem

log = get_logger(__name__)

PATH_PREFIX = "/preview/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_KEY_CONTEXT = b"once-only-broker/preview-token/v1"


def derive_key(pseudonym_secret: bytes) -> bytes:
    """The preview token key, domain-separated from the pseudonym secret it derives from."""
    return hmac.new(pseudonym_secret, _KEY_CONTEXT, hashlib.sha256).digest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_in_location(location: str) -> str | None:
    """The token of a preview location URL (``…/preview/{token}``), whatever host it names."""
    path = urllib.parse.urlsplit(location.strip()).path
    if PATH_PREFIX not in path:
        return None
    token = path.rsplit(PATH_PREFIX, 1)[1].strip("/")
    return token if _TOKEN.match(token) else None


@dataclass(frozen=True)
class Previews:
    """Token minting and lifetime of previews; one per process, built from the key store."""

    key: bytes
    ttl: timedelta
    clock: Clock
    # Lifetimes of previews of a channel's exchanges where it sets its own (the OOTS gateway's T2).
    channel_ttl: Mapping[str, timedelta] = field(default_factory=dict)

    def token(self, exchange_id: str) -> str:
        mac = hmac.new(self.key, exchange_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def path(self, exchange_id: str) -> str:
        return PATH_PREFIX + self.token(exchange_id)

    def open(self, session: Session, exchange: Exchange) -> datetime:
        """Open the preview of a held exchange (``ExchangeDependencies.open_preview``); returns its expiry."""
        expires_at = self.clock.now() + self.channel_ttl.get(exchange.channel, self.ttl)
        # No relationship ties a preview to its exchange, so the flush would not know the
        # exchange row must come first.
        session.flush()
        repository.add(
            session,
            Preview(
                id=str(uuid.uuid4()),
                exchange_id=exchange.id,
                token_hash=hash_token(self.token(exchange.id)),
                state="pending",
                expires_at=expires_at,
            ),
        )
        return expires_at


@dataclass(frozen=True)
class PreviewState:
    preview: Preview
    exchange: Exchange


def find(session: Session, deps: ExchangeDependencies, token: str) -> PreviewState | None:
    """The preview a token opens, expired first if its time is up; None for unknown tokens."""
    if not _TOKEN.match(token):
        return None
    preview = repository.by_token_hash(session, hash_token(token))
    if preview is None:
        return None
    exchange = exchanges.get(session, preview.exchange_id)
    if exchange is None:
        return None
    expire_if_due(session, deps, preview, exchange)
    return PreviewState(preview, exchange)


def current(session: Session, deps: ExchangeDependencies, exchange_id: str) -> Exchange | None:
    """The exchange as it stands, its preview expired first if its time is up."""
    exchange = exchanges.get(session, exchange_id)
    if exchange is not None and exchange.state == State.AWAITING_PREVIEW:
        preview = repository.for_exchange(session, exchange.id)
        if preview is not None:
            expire_if_due(session, deps, preview, exchange)
    return exchange


def expire_if_due(session: Session, deps: ExchangeDependencies, preview: Preview, exchange: Exchange) -> None:
    """Expire an undecided preview whose time is up: the held evidence is dropped, unreleased.

    Done lazily, by whoever next looks at the preview; the exchange's ``expires_at`` (the same
    moment) lets any retention sweep drop the evidence of previews nobody looks at again.
    """
    now = deps.clock.now()
    if preview.state != "pending" or as_utc(preview.expires_at) > now:
        return
    if repository.settle(session, preview, "expired", now) and exchange.state == State.AWAITING_PREVIEW:
        exchange.evidence = None
        lifecycle.transition(
            session,
            exchange,
            State.EXPIRED,
            at=now,
            requester=clients.name_of(session, exchange.requester_id),
            problem=Problem(410, "preview.expired", "The citizen did not decide in time; the evidence was discarded."),
        )


@dataclass(frozen=True)
class Access:
    """What a signed-in citizen gets at a preview address: the preview (None: there is none),
    and why they may not see or decide it (a reason code; None: they may)."""

    state: PreviewState | None
    refusal: str | None = None


def open_for(session: Session, deps: ExchangeDependencies, token: str, citizen: Citizen, max_age: timedelta) -> Access:
    """The preview a token opens, for this citizen: only its subject, at or above the evidence
    type's level of assurance, recently authenticated, may see it (a refusal is logged)."""
    state = find(session, deps, token)
    if state is None:
        return Access(None)
    reason = access_refusal(session, citizen, state.exchange, deps.registry.get(), deps.clock.now(), max_age)
    return Access(state, reason)


def decide(
    session: Session, deps: ExchangeDependencies, token: str, approve: bool, citizen: Citizen, max_age: timedelta
) -> Access:
    """The citizen's decision. Approval seals and delivers the held evidence, declining drops it.

    Only the exchange's subject decides (:func:`open_for`); anyone else gets the refusal back,
    recorded, and nothing changes. A preview whose time is up comes back ``expired`` (not
    raised: its expiry is a change the caller commits). A second decision is a 409 naming the
    first.
    """
    access = open_for(session, deps, token, citizen, max_age)
    if access.state is None or access.refusal is not None:
        return access
    preview, exchange = access.state.preview, access.state.exchange
    if preview.state == "expired":
        return access
    now = deps.clock.now()
    if (
        preview.state != "pending"
        or exchange.state != State.AWAITING_PREVIEW
        or exchange.evidence is None
        or not repository.settle(session, preview, "approved" if approve else "declined", now)
    ):
        raise Problem(
            409, "preview.decided", f"This preview was decided already ({preview.state}).", state=preview.state
        )
    # The preview is decided by the citizen, but the steps it causes stay part of the requester's exchange.
    requester = clients.name_of(session, exchange.requester_id)
    outcome = "approved" if approve else "declined"
    lifecycle.step(session, exchange, "preview_decided", at=now, requester=requester, outcome=outcome)
    if approve:
        exchange_service.deliver(session, deps, exchange, requester, exchange.evidence)
    else:
        exchange.evidence = None
        lifecycle.transition(
            session,
            exchange,
            State.REJECTED,
            at=now,
            requester=requester,
            problem=Problem(403, "preview.declined", "The citizen declined to release the evidence."),
        )
    log.info("preview_decided", exchange=exchange.id, outcome=outcome)
    return access


def return_url(session: Session, token: str, wanted: str | None) -> str | None:
    """Where the citizen's page may link back to: ``wanted`` only if it points to a callback
    origin the requester of the preview's exchange registered; None otherwise."""
    if not wanted or not _TOKEN.match(token):
        return None
    preview = repository.by_token_hash(session, hash_token(token))
    exchange = exchanges.get(session, preview.exchange_id) if preview is not None else None
    if exchange is None:
        return None
    return wanted if egress.is_under_origins(wanted, clients.callback_origins(session, exchange.requester_id)) else None


def requester_name(session: Session, exchange: Exchange) -> str:
    """Who asks for the evidence, as the citizen's page names them."""
    return clients.name_of(session, exchange.requester_id)
