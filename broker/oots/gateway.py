"""The gateway's request path: one EDM message in, one EDM answer out. Built once at start-up.

The order is media type, parse, root, authentication, schema, then the EDM content: parsing
first (it is cheap and bounded) lets even a refusal of an unauthenticated caller echo the
``requestId``. The HTTP statuses are explained in ``broker.oots.routes``.
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.clients.auth import PrincipalCache, authenticate_header
from broker.clients.service import Principal
from broker.db.session import Database
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.service import ExchangeResult, KeyTaken
from broker.logging import get_logger
from broker.oots import edm, service
from broker.oots.edm import EdmCode, EdmError
from broker.oots.service import Answer
from broker.preview.presenters import location
from broker.preview.service import Previews
from broker.problems import Problem
from broker.tasks.remote import RemoteExchanges
from broker.xml.catalogue import SchemaCatalogue
from broker.xml.hardened import XmlIntakeError, XmlLimits, check_media_type, expect_root, parse_xml

log = get_logger(__name__)


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
    ) -> None:
        self._database = database
        self._deps = deps
        self._remote = remote
        self._principals = principals
        self._catalogue = catalogue
        self._limits = limits
        self._previews = previews
        self._origin = origin

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
            expect_root(root, (edm.QUERY_REQUEST,))
        except XmlIntakeError as error:
            return self._intake_failure(error, request_id)
        try:
            principal = authenticate_header(headers.get("authorization", ""), self._principals, "requester")
        except Problem as refusal:
            code = EdmCode.AUTHENTICATION if refusal.status == 401 else EdmCode.AUTHORIZATION
            challenge = (("WWW-Authenticate", "Bearer"),) if refusal.status == 401 else ()
            answer = self._failure(EdmError(code, refusal.reason, refusal.detail), request_id, status=refusal.status)
            return Answer(answer.status, answer.media_type, answer.body, challenge)
        try:
            self._catalogue.validate(root)
        except XmlIntakeError as error:
            return self._intake_failure(error, request_id)
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

    def _exchange(self, principal: Principal, request: edm.EvidenceRequest, public_base: str) -> Answer:
        try:
            service.check(principal, request)
            if request.preview_location:
                with self._database.unit_of_work() as session:
                    exchange = service.after_preview(session, self._deps, principal, request)
            else:
                try:
                    result = self._start(principal, request)
                except KeyTaken:  # the same request id arrived twice at once: this one replays the first
                    result = self._start(principal, request)
                # A remote authority is asked only after the routed state is committed; then the
                # gateway waits the synchronous window like the JSON API (an exchange still open
                # then is EDM:ERR:0005).
                exchange = self._remote.settle(result).exchange
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
