"""The message signatures, the callback HMAC and the circuit breaker, as units (no network)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.http_push import CircuitBreaker
from adapters.protocol import AdapterOutcome, OutcomeKind
from adapters.signing import SignatureError, SignedMessage, content_digest, sign, verify
from adapters.wire import GarbageAnswer, decode_answer, encode_answer
from broker.callbacks import signing as callbacks
from broker.xml.hardened import check_well_formed

KEY = Ed25519PrivateKey.generate()
REQUEST = SignedMessage("application/json", b'{"request_id": "1"}', method="POST", path="/evidence")


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_request_signature_round_trip_and_tampering() -> None:
    headers = lower(sign(REQUEST, KEY))
    verify(REQUEST, headers, KEY.public_key())
    for changed in (
        SignedMessage("application/json", b'{"request_id": "2"}', method="POST", path="/evidence"),
        SignedMessage("application/json", REQUEST.body, method="POST", path="/other"),
        SignedMessage("text/plain", REQUEST.body, method="POST", path="/evidence"),
    ):
        with pytest.raises(SignatureError):
            verify(changed, headers, KEY.public_key())
    with pytest.raises(SignatureError) as wrong_key:
        verify(REQUEST, headers, Ed25519PrivateKey.generate().public_key())
    assert wrong_key.value.reason == "signature.invalid"


def test_answers_are_bound_to_their_request() -> None:
    answer = SignedMessage("application/xml", b"<a/>", status=200, request_digest=content_digest(REQUEST.body))
    headers = lower(sign(answer, KEY))
    verify(answer, headers, KEY.public_key())
    replayed = SignedMessage("application/xml", b"<a/>", status=200, request_digest=content_digest(b"other"))
    with pytest.raises(SignatureError):
        verify(replayed, headers, KEY.public_key())


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "signature"}, "signature.missing"),
        (lambda h: {**h, "signature-input": h["signature-input"].replace('"@path" ', "")}, "signature.components"),
        (lambda h: {**h, "content-digest": content_digest(b"x")}, "signature.digest_mismatch"),
        (lambda h: {**h, "signature": "sig1=:AAAA:"}, "signature.invalid"),
        (lambda h: {**h, "signature-input": "nonsense"}, "signature.malformed"),
    ],
)
def test_refusals_name_their_reason(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError) as refused:
        verify(REQUEST, mutate(lower(sign(REQUEST, KEY))), KEY.public_key())
    assert refused.value.reason == reason


def test_stale_signatures_are_refused() -> None:
    headers = lower(sign(REQUEST, KEY, now=time.time() - 301))
    with pytest.raises(SignatureError) as stale:
        verify(REQUEST, headers, KEY.public_key())
    assert stale.value.reason == "signature.stale"


def test_wire_answers() -> None:
    found = AdapterOutcome.found(b"<x/>")
    assert decode_answer(*encode_answer(found), check_well_formed) == found
    missing = AdapterOutcome(OutcomeKind.NOT_FOUND, detail="none")
    assert decode_answer(*encode_answer(missing), check_well_formed) == missing
    for content_type, body in (
        ("text/plain", b"hello"),
        ("application/xml", b"<x>"),
        ("application/json", b'{"kind": "evidence", "evidence": "<x/>"}'),
        ("application/json", b"[1]"),
        ("application/json", b'{"kind": "teapot"}'),
    ):
        with pytest.raises(GarbageAnswer):
            decode_answer(content_type, body, check_well_formed)
    # Well-formed is not enough: the broker's intake also refuses unsafe XML.
    with pytest.raises(GarbageAnswer, match=r"xml\.doctype_forbidden"):
        decode_answer("application/xml", b"<!DOCTYPE x><x/>", check_well_formed)


def test_callback_hmac() -> None:
    secret = callbacks.requester_secret(b"k" * 32, 7)
    assert secret != callbacks.requester_secret(b"k" * 32, 8)
    headers = callbacks.sign(secret, b'{"a":1}', now=1_000_000)
    assert callbacks.verify(secret, b'{"a":1}', headers, now=1_000_000 + 299)
    assert not callbacks.verify(secret, b'{"a":1}', headers, now=1_000_000 + 301)
    assert not callbacks.verify(secret + "x", b'{"a":1}', headers, now=1_000_000)


def test_circuit_breaker_opens_and_half_opens() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=0.2)
    breaker.failed()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    time.sleep(0.25)
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # only one at a time
    breaker.failed()
    assert breaker.state == "open"
    time.sleep(0.25)
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()
