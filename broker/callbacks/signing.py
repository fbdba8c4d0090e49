"""The callback signature: HMAC-SHA512 over ``<timestamp>.<body>`` with the requester's secret.

Headers of every callback ``POST``:

* ``X-Broker-Timestamp``: Unix time in seconds when the broker signed the callback;
* ``X-Broker-Signature``: ``v1=<hex HMAC-SHA512(secret, timestamp + "." + body)>``.

A receiver recomputes the HMAC over the exact bytes it received, compares in constant time,
and refuses a callback whose timestamp is more than five minutes from its clock (that makes a
captured callback useless for a replay later; within the window, the exchange id in the body
lets the receiver drop duplicates).

Each requester's secret is derived, not stored: ``"cbs_" + base64url(HMAC-SHA256(K, "callback/v1/"
+ client id))`` where K is the broker's ``callback.key`` (32 random bytes in the key directory).
So the database never holds it, ``broker clients add`` prints it for requesters and
``broker clients callback-secret NAME`` prints it again; a new K changes every secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 300
TIMESTAMP_HEADER = "X-Broker-Timestamp"
SIGNATURE_HEADER = "X-Broker-Signature"


def requester_secret(master: bytes, client_id: int) -> str:
    mac = hmac.new(master, f"callback/v1/{client_id}".encode(), hashlib.sha256).digest()
    return "cbs_" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def _mac(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha512).hexdigest()


def sign(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"v1={_mac(secret, timestamp, body)}"}


def verify(secret: str, body: bytes, headers: Mapping[str, str], now: float | None = None) -> bool:
    """What a receiver does: True only for a fresh callback signed with ``secret``."""
    timestamp = headers.get(TIMESTAMP_HEADER) or headers.get(TIMESTAMP_HEADER.lower()) or ""
    signature = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower()) or ""
    if not timestamp.isdigit() or not signature.startswith("v1="):
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(signature[3:], _mac(secret, timestamp, body))
