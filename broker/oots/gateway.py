"""The gateway's request path: one EDM message in, one EDM answer out. Built once at start-up.

The order is media type, parse, authentication, root, schema, the official business rules (the
EDM-REQ rule files, where BROKER_OOTS_RULES_PATH names them), then the EDM content: parsing
first (it is cheap and bounded) lets even a refusal of an unauthenticated caller echo the
``requestId``. The HTTP statuses are explained in ``broker.oots.routes``.

Timing follows the three phases of a request with preview (settings ``BROKER_OOTS_T1_SECONDS``
…): a request waits up to T1 for a remote authority; the preview stays open for T2 (the
previews' lifetime for this channel, set in ``bootstrap``); a request that comes back with the
PreviewLocation before the citizen decided is held up to T3 for the decision. Waiting happens
outside any transaction; what the exchange then stands at is answered by ``service.answer``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from broker.clients.auth import PrincipalCache, authenticate_header
from broker.clients.service import Principal
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.db.session import Database
from broker.exchange import repository as exchanges
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State
from broker.exchange.service import ExchangeResult, KeyTaken
from broker.logging import get_logger
from broker.oots import edm, mapping, service
from broker.oots.edm import EdmCode, EdmError
from broker.oots.service import Answer
from broker.preview.presenters import location
from broker.preview.service import Previews
from broker.problems import Problem
from broker.tasks.remote import RemoteExchanges
from broker.xml.catalogue import SchemaCatalogue
from broker.xml.hardened import XmlIntakeError, XmlLimits, check_media_type, expect_root, parse_xml
from broker.xml.schematron import RuleSet

log = get_logger(__name__)

# How often a held request looks whether the citizen decided (a decision in any process counts).
POLL_SECONDS = 0.2
# Requests held for a citizen's decision at once, per process: each keeps one of the server's
# worker threads (AnyIO's default pool has 40), which the citizens' pages need too.
HELD_AT_ONCE = 8


@dataclass(frozen=True)
class Timeouts:
    """The gateway's timeouts in seconds (settings ``BROKER_OOTS_T1_SECONDS`` …, README):
    T1 a request waits for the authority, T3 a request that returned with the PreviewLocation
    waits for the citizen's decision. T2, the preview's lifetime, is the previews' business."""

    t1: float = 60.0
    t3: float = 60.0


class EdmGateway:
    def __init__(
        self,
        database: Database,
        deps: ExchangeDependencies,
        remote: RemoteExchanges,
        principals: PrincipalCache,
        catalogue: SchemaCatalogue,
        limits: XmlLimits,
        previews: Previews,
        origin: str,
        timeouts: Timeouts | None = None,
        request_rules: Sequence[RuleSet] = (),
    ) -> None:
        self._database = database
        self._deps = deps
        self._remote = remote
        self._principals = principals
        self._catalogue = catalogue
        self._limits = limits
        self._previews = previews
        self._origin = origin
        self._timeouts = timeouts or Timeouts()
        self._request_rules = tuple(request_rules)
        self._held = threading.BoundedSemaphore(HELD_AT_ONCE)

    def too_large(self) -> Answer:
        return self._intake_failure(
            XmlIntakeError.of("xml.too_large", f"the body exceeds {self._limits.max_bytes} bytes"), None
        )

    def handle(self, headers: Mapping[str, str], raw: bytes, public_base: str) -> Answer:
        """Answer one EDM message; ``public_base`` is the broker's address for preview links."""
        request_id: str | None = None
        try:
            check_media_type(headers.get("content-type"), (edm.MEDIA_TYPE,))
            root = parse_xml(raw, self._limits)
            request_id = edm.request_id_of(root)
        except XmlIntakeError as error:
            return self._intake_failure(error, request_id)
        try:
            principal = authenticate_header(headers.get("authorization", ""), self._principals, "requester")
        except Problem as refusal:
            code = mapping.code_for(refusal.reason, refusal.status)
            challenge = (("WWW-Authenticate", "Bearer"),) if refusal.status == 401 else ()
            answer = self._failure(EdmError(code, refusal.reason, refusal.detail), request_id, status=refusal.status)
            return Answer(answer.status, answer.media_type, answer.body, challenge)
        try:
            expect_root(root, (edm.QUERY_REQUEST,))
            self._catalogue.validate(root)
        except XmlIntakeError as error:
            return self._intake_failure(error, request_id)
        if broken := self._broken_rules(root):
            return self._failure(broken, request_id)
        try:
            return self._exchange(principal, edm.read_request(root), public_base)
        except EdmError as error:
            return self._failure(error, request_id)
        except Exception as error:  # a fault of ours still gets an EDM answer, never a bare 500 page
            log.error("oots_request_failed", error_type=type(error).__name__)
            fault = EdmError(
                EdmCode.PROCESSING, "internal_error", "The broker could not process the request; it has been logged."
            )
            return self._failure(fault, request_id, status=500)

    def _broken_rules(self, root: etree._Element) -> EdmError | None:
        """The refusal of a request that breaks the official business rules (EDM-REQ-S/-C, where
        BROKER_OOTS_RULES_PATH names them): EDM:ERR:0003, naming every failed rule id."""
        failed = sorted(
            {failure.rule_id for rules in self._request_rules for failure in rules.check_tree(root) if failure.blocking}
        )
        if not failed:
            return None
        log.info("oots_request_rules_failed", rules=",".join(failed[:20]))
        shown = ", ".join(failed[:20]) + (f" and {len(failed) - 20} more" if len(failed) > 20 else "")
        return EdmError(
            EdmCode.INVALID_REQUEST, "oots.rules_failed", f"The request breaks the OOTS business rules {shown}."
        )

    def _exchange(self, principal: Principal, request: edm.EvidenceRequest, public_base: str) -> Answer:
        try:
            request = service.check(principal, request)
            if request.preview_location:
                with self._database.unit_of_work() as session:
                    exchange = service.after_preview(session, self._deps, principal, request)
                if exchange.state == State.AWAITING_PREVIEW:
                    exchange = self._await_decision(principal, request, exchange)
            else:
                try:
                    result = self._start(principal, request)
                except KeyTaken:  # the same request id arrived twice at once: this one replays the first
                    result = self._start(principal, request)
                # A remote authority is asked only after the routed state is committed; then the
                # gateway waits up to T1 for its answer (an exchange still open then is EDM:ERR:0005).
                exchange = self._remote.settle(result, self._timeouts.t1).exchange
        except EdmError as error:
            return self._failure(error, request.id, request)
        return service.answer(
            exchange,
            request,
            self._deps.registry.get(),
            now=self._deps.clock.now(),
            origin=self._origin,
            preview_location=lambda exchange_id: location(public_base, self._previews, exchange_id),
        )

    def _await_decision(self, principal: Principal, request: edm.EvidenceRequest, exchange: Exchange) -> Exchange:
        """Hold a request that came back with the PreviewLocation before the citizen decided, until
        they decide, the preview expires (T2) or T3 passes, whichever comes first; then answer
        with where the exchange stands (evidence, none, or EDM:ERR:0005 with the preview slots)
        rather than with a second PreviewRequired.

        Held outside any transaction, looking at the exchange with reads (a decision taken in
        another process shows there too). Only so many requests are held at once per process
        (:data:`HELD_AT_ONCE`): a held request keeps a worker thread, and the citizen's own
        decision needs one. Past that, the request is answered at once as it stands.
        """
        if not self._held.acquire(blocking=False):
            return exchange
        try:
            deadline = time.monotonic() + self._timeouts.t3
            expires_at = as_utc(exchange.expires_at) if exchange.expires_at is not None else None
            while (remaining := deadline - time.monotonic()) > 0:
                if expires_at is not None:
                    until_expiry = (expires_at - self._deps.clock.now()).total_seconds()
                    if until_expiry <= 0:
                        break
                    remaining = min(remaining, until_expiry)
                time.sleep(min(POLL_SECONDS, remaining))
                with self._database.read() as session:
                    if exchanges.state(session, exchange.id) != State.AWAITING_PREVIEW:
                        break
        finally:
            self._held.release()
        # One write transaction reads the outcome, and expires a preview whose time is up.
        with self._database.unit_of_work() as session:
            return service.after_preview(session, self._deps, principal, request)

    def _start(self, principal: Principal, request: edm.EvidenceRequest) -> ExchangeResult:
        with self._database.unit_of_work() as session:
            result = service.start(session, self._deps, principal, request)
            self._remote.begin(session, result)
        return result

    def _failure(
        self, error: EdmError, request_id: str | None, request: edm.EvidenceRequest | None = None, status: int = 200
    ) -> Answer:
        return service.failure(
            error,
            now=self._deps.clock.now(),
            origin=self._origin,
            request_id=request_id,
            request=request,
            status=status,
        )

    def _intake_failure(self, error: XmlIntakeError, request_id: str | None) -> Answer:
        where = f" (line {error.line})" if error.line else ""
        detail = f"{error.detail}{where}" + (f" at {error.path}" if error.path else "")
        edm_error = EdmError(
            EdmCode.INVALID_REQUEST, error.reason, "The message is not an acceptable QueryRequest.", detail
        )
        answer = self._failure(edm_error, request_id, status=error.status)
        headers = (("Connection", "close"),) if error.status == 413 else ()
        return Answer(answer.status, answer.media_type, answer.body, headers)
