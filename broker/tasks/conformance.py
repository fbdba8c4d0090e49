"""The adapter conformance kit: a fixed battery of cases run against one authority's adapter.

Cases (each prints one line): known subject, unknown subject, ambiguous subject, malformed
request, slow answer, invalid XML, bad signature. Known/unknown/ambiguous run as real
exchanges through the exchange core in the adapter's binding (so they are recorded in the log,
requested by the client ``conformance-kit``); the others probe the adapter or the broker's
intake directly:

* malformed request — in-process: a query without identifying attributes gives no evidence and
  raises nothing; push: a signed request that is not a query is refused with a 4xx; pull: a
  task whose payload is not a query is answered with a failure.
* slow answer — the known subject's answer came within the authority's ``timeout_seconds``.
* invalid XML — the adapter's evidence, truncated or stripped of a required element, is refused
  by the broker's intake (not delivered).
* bad signature — push: a request signed with a foreign key is refused by the authority; pull: a
  result signed with a foreign key is refused by the broker. In-process adapters exchange no
  signed messages: the case is reported ``SKIP``.

The kit's exchanges route as if the authority's pending routes were active: an authority is
checked before ``broker rollout onboard`` activates them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree
from sqlalchemy.orm import Session

from adapters.protocol import EvidenceQuery, OutcomeKind, Subject
from adapters.registers.queries import sample_subjects
from adapters.registers.reference import REGISTERS
from adapters.signing import SignedMessage, sign
from adapters.wire import XML, GarbageAnswer, decode_answer
from broker.clients import repository as clients_repository
from broker.clients.service import CLI_ACTOR, Principal, add_client
from broker.db.models import Exchange
from broker.db.session import Database
from broker.exchange import lifecycle
from broker.exchange import repository as exchange_repository
from broker.exchange.dependencies import ExchangeDependencies, RegistrySource
from broker.exchange.dispatch import Adapters
from broker.exchange.schemas import EvidenceRequestIn, SubjectIn
from broker.exchange.service import request_evidence
from broker.registry.schemas import AuthoritySpec
from broker.registry.service import RegistrySnapshot
from broker.tasks import repository as tasks_repository
from broker.tasks import service
from broker.tasks.remote import RemoteExchanges
from broker.xml.hardened import XmlIntakeError, check_well_formed

KIT_CLIENT = "conformance-kit"
# The registry ids the kit's exchanges are logged under: every registry the kit runs against
# holds this purpose and legal basis (the demo registry does).
KIT_PURPOSE = "konformitaetspruefung"
KIT_LEGAL_BASIS = "konformitaetspruefung"
UNKNOWN = Subject(family_name="Niemand", given_name="Keiner", birth_date=None)
CASES = (
    "known subject",
    "unknown subject",
    "ambiguous subject",
    "malformed request",
    "slow answer",
    "invalid XML",
    "bad signature",
)


@dataclass(frozen=True)
class CaseResult:
    case: str
    verdict: str  # PASS | FAIL | SKIP
    detail: str

    def line(self) -> str:
        return f"{self.verdict:<4}  {self.case:<18}  {self.detail}"


class Activating:
    """A registry in which one authority's pending routes are active."""

    def __init__(self, source: RegistrySource, authority_id: str) -> None:
        self._source = source
        self._authority_id = authority_id

    def get(self) -> RegistrySnapshot:
        return self._source.get().activating(self._authority_id)


@dataclass
class Ended:
    state: str
    reason: str | None
    seconds: float
    evidence: bytes | None = None


class Battery:
    def __init__(
        self,
        database: Database,
        deps: ExchangeDependencies,
        adapters: Adapters,
        remote: RemoteExchanges,
        authority: AuthoritySpec,
        wait_seconds: float = 30.0,
    ) -> None:
        self.database = database
        self.deps = replace(deps, registry=Activating(deps.registry, authority.id))
        self.adapters = adapters
        self.remote = remote
        self.authority = authority
        self.wait_seconds = wait_seconds
        self.evidence_type = next(
            t
            for t in deps.registry.get().evidence_types.values()
            if _register_of(t.namespace) == authority.register_kind
        )

    # --- running exchanges ---------------------------------------------------------------

    def _principal(self, session: Session) -> Principal:
        client = clients_repository.by_name(session, KIT_CLIENT)
        if client is None:
            # The kit runs from the command line (`broker adapters check`).
            add_client(
                session,
                KIT_CLIENT,
                "requester",
                [(self.evidence_type.id, None)],
                actor=CLI_ACTOR,
                now=self.deps.clock.now(),
            )
            client = clients_repository.by_name(session, KIT_CLIENT)
        assert client is not None
        types = frozenset((t, None) for t in self.deps.registry.get().evidence_types)
        return Principal(client.id, client.name, "requester", None, None, types)

    def exchange(self, subject: Subject, task_payload: dict[str, object] | None = None) -> Ended:
        """A real exchange for ``subject`` with this authority, in its binding, until it ends."""
        deps = self.deps
        body = EvidenceRequestIn(
            evidence_type=self.evidence_type.id,
            jurisdiction=self.authority.ars or None,
            subject=SubjectIn.model_construct(**{k: v for k, v in subject.__dict__.items()}),
            purpose=KIT_PURPOSE,
            legal_basis=KIT_LEGAL_BASIS,
            explicit_request=True,
        )
        started = time.monotonic()
        with self.database.unit_of_work() as session:
            result = request_evidence(session, deps, self._principal(session), body, None)
            query = result.pending
            if query is not None and self.authority.binding == "pull":
                task = service.enqueue(session, query, deps.clock.now())
                if task_payload is not None:
                    task.payload = {**task_payload, "request_id": query.request_id}
        if query is not None and query.authority_id != self.authority.id:
            return Ended("misrouted", query.authority_id, 0.0)
        if query is not None and self.authority.binding == "http_push":
            outcome = self.adapters.push(self.authority).fetch(query)
            self.remote.finish(query, outcome)
        exchange = self._await_end(result.exchange.id)
        return Ended(exchange.state, exchange.reason, time.monotonic() - started, exchange.evidence)

    def _await_end(self, exchange_id: str) -> Exchange:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            with self.database.read() as session:
                exchange = exchange_repository.get(session, exchange_id)
            assert exchange is not None
            if lifecycle.is_terminal(exchange.state) or time.monotonic() > deadline:
                return exchange
            time.sleep(0.1)

    # --- the cases -----------------------------------------------------------------------------

    def run(self) -> list[CaseResult]:
        with self.database.read() as session:
            model = REGISTERS[self.authority.register_kind][0]
            known, ambiguous = sample_subjects(session, model, self.authority.id)
        results: list[CaseResult] = []
        known_end: Ended | None = None
        if known is None:
            results.append(CaseResult("known subject", "FAIL", "the register has no entries to ask for"))
        else:
            known_end = self.exchange(known)
            results.append(_expect("known subject", known_end, "delivered", None))
        results.append(_expect("unknown subject", self.exchange(_unknown()), "failed", "subject.not_found"))
        if ambiguous is None:
            results.append(CaseResult("ambiguous subject", "SKIP", "no two entries share name and birth date"))
        else:
            results.append(_expect("ambiguous subject", self.exchange(ambiguous), "failed", "subject.ambiguous"))
        results.append(self.malformed())
        if known_end is None or known_end.state != "delivered":
            results.append(CaseResult("slow answer", "FAIL", "no answer for the known subject to time"))
        else:
            limit = self.authority.timeout_seconds
            verdict = "PASS" if known_end.seconds <= limit else "FAIL"
            results.append(
                CaseResult("slow answer", verdict, f"answered in {known_end.seconds:.2f} s (limit {limit:g} s)")
            )
        results.append(self.invalid_xml(known))
        results.append(self.bad_signature())
        return results

    def malformed(self) -> CaseResult:
        name = "malformed request"
        if self.authority.binding == "in_process":
            query = EvidenceQuery(str(uuid.uuid4()), self.evidence_type.id, self.authority.id, None, Subject())
            try:
                with self.database.read() as session:
                    outcome = self.adapters.for_authority(self.authority, session).fetch(query)
            except Exception as error:
                return CaseResult(name, "FAIL", f"the adapter raised {type(error).__name__}")
            ok = outcome.kind is not OutcomeKind.EVIDENCE
            return CaseResult(name, "PASS" if ok else "FAIL", f"answered {outcome.kind.value}")
        if self.authority.binding == "http_push":
            outcome = self.adapters.push(self.authority).fetch_raw(b'{"request_id": 42, "subject": "?"}')
            ok = outcome.reason == "authority.refused"
            return CaseResult(
                name, "PASS" if ok else "FAIL", f"{outcome.reason or outcome.kind.value}: {outcome.detail}"
            )
        ended = self.exchange(_unknown(), task_payload={"evidence_type": 7, "subject": "not a subject"})
        ok = ended.state == "failed" and ended.reason not in ("exchange.expired",)
        return CaseResult(name, "PASS" if ok else "FAIL", f"exchange {ended.state} ({ended.reason})")

    def _evidence(self, known: Subject | None) -> bytes | None:
        if known is None:
            return None
        if self.authority.binding == "in_process":
            query = EvidenceQuery(str(uuid.uuid4()), self.evidence_type.id, self.authority.id, None, known)
            with self.database.read() as session:
                return self.adapters.for_authority(self.authority, session).fetch(query).evidence
        ended = self.exchange(known)
        if ended.evidence is None:
            return None
        root = etree.fromstring(ended.evidence)
        for signature in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
            root.remove(signature)  # the broker's seal; what is left is the authority's document
        return etree.tostring(root)

    def invalid_xml(self, known: Subject | None) -> CaseResult:
        name = "invalid XML"
        evidence = self._evidence(known)
        if evidence is None:
            return CaseResult(name, "FAIL", "no evidence from the adapter to corrupt")
        truncated = evidence[: len(evidence) // 2]
        root = etree.fromstring(evidence)
        root.remove(root[0])  # the Ausstellung block, required in every evidence type
        stripped = etree.tostring(root)
        refused = []
        try:
            decode_answer(XML, truncated, check_well_formed)
        except GarbageAnswer:
            refused.append("truncated")
        try:
            self.deps.evidence.check(stripped, self.evidence_type.namespace, self.evidence_type.root_element)
        except XmlIntakeError:
            refused.append("schema-invalid")
        if self.authority.binding == "pull":
            accepted = self._post_as_impostor(truncated, sign_it=False)
            if accepted.refusal is not None and accepted.exchange_state != "delivered":
                refused.append("pull post")
        wanted = 3 if self.authority.binding == "pull" else 2
        verdict = "PASS" if len(refused) == wanted else "FAIL"
        return CaseResult(name, verdict, f"refused: {', '.join(refused) or 'nothing'}")

    def bad_signature(self) -> CaseResult:
        name = "bad signature"
        foreign = Ed25519PrivateKey.generate()
        if self.authority.binding == "in_process":
            return CaseResult(name, "SKIP", "in-process adapters exchange no signed messages")
        if self.authority.binding == "http_push":
            query = EvidenceQuery(str(uuid.uuid4()), self.evidence_type.id, self.authority.id, None, _unknown())
            body = json.dumps(query.to_json()).encode()
            outcome = self.adapters.push(self.authority).fetch_raw(body, signing_key=foreign)
            ok = outcome.reason == "authority.refused"
            return CaseResult(name, "PASS" if ok else "FAIL", f"request with a foreign signature: {outcome.detail}")
        accepted = self._post_as_impostor(b"<x/>", sign_it=True, key=foreign)
        ok = accepted.refusal is not None and accepted.refusal.reason == "authority.bad_signature"
        detail = accepted.refusal.reason if accepted.refusal else "accepted"
        return CaseResult(name, "PASS" if ok else "FAIL", f"result with a foreign signature: {detail}")

    def _post_as_impostor(self, body: bytes, sign_it: bool, key: Ed25519PrivateKey | None = None) -> service.Accepted:
        """A pull answer that did not come from the authority: the broker must refuse it."""
        deps = self.deps
        with self.database.unit_of_work() as session:
            principal = self._principal(session)
            result = request_evidence(session, deps, principal, self._body(), None)
            assert result.pending is not None
            task = service.enqueue(session, result.pending, deps.clock.now())
            # Leased to nobody for a while, so the real adapter does not answer it first.
            tasks_repository.mark_leased(session, task.id, deps.clock.now() + timedelta(minutes=5))
            task_id = task.id
        path = f"/v1/adapter/tasks/{task_id}/result"
        headers = sign(SignedMessage(XML, body, method="POST", path=path), key) if sign_it and key else {}
        adapter = Principal(0, "impostor", "adapter", None, self.authority.id, frozenset())
        with self.database.unit_of_work() as session:
            accepted = service.answer(session, deps, adapter, task_id, path, XML, body, _lower(headers), XML)
        return accepted

    def _body(self) -> EvidenceRequestIn:
        return EvidenceRequestIn(
            evidence_type=self.evidence_type.id,
            jurisdiction=self.authority.ars or None,
            subject=SubjectIn(family_name="Niemand", given_name="Keiner", birth_date=_unknown().birth_date),
            purpose=KIT_PURPOSE,
            legal_basis=KIT_LEGAL_BASIS,
            explicit_request=True,
        )


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _unknown() -> Subject:
    from datetime import date

    return Subject(family_name="Niemand", given_name="Keiner", birth_date=date(1901, 1, 1))


def _register_of(namespace: str) -> str | None:
    return next((kind for kind, (_m, _r, ns) in REGISTERS.items() if ns == namespace), None)


def _expect(case: str, ended: Ended, state: str, reason: str | None) -> CaseResult:
    ok = ended.state == state and (reason is None or ended.reason == reason)
    got = ended.state + (f" ({ended.reason})" if ended.reason else "")
    return CaseResult(case, "PASS" if ok else "FAIL", f"exchange {got} in {ended.seconds:.2f} s")
