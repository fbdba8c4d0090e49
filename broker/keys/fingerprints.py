"""Binding a keys directory to the database whose log it signs.

The log's checkpoints are signed by the checkpoint key and its subjects are pseudonyms keyed by
the pseudonym secret. A broker started with other keys (an empty or wrong ``BROKER_KEYS_DIR``)
would sign new checkpoints that contradict the old ones and give every citizen a second
pseudonym: to an auditor that looks like tampering. So the database records fingerprints of
the keys (table ``key_fingerprints``) and a broker refuses keys it does not know.

Fingerprints are never the keys: the SHA-256 of a checkpoint key's raw public key, and the
SHA-256 of an HMAC tag of the pseudonym secret under a context of its own (domain separation:
the fingerprint equals no other value derived from the secret, such as the request-digest key).

The rules (:func:`check`, run at every start before traffic and by ``broker keys rotate``):

* Nothing recorded yet (a new database, or one from before migration 0009): the directory's
  keys are recorded, generated first if the directory is new, *unless* the database already
  holds what keys made (a checkpoint, or a pseudonym in the log) while the directory holds no
  keys: generating keys then would fork the log, so the start is refused.
* Something recorded: the directory must already hold keys (none are generated), its active
  checkpoint key must be a recorded one (retired ones stay recorded: old checkpoints are
  signed by them) and its pseudonym secret must be the newest recorded one.
* ``broker keys rotate`` records the new checkpoint key (:func:`record_rotation`);
  ``broker keys adopt --yes`` records whatever the directory holds (:func:`adopt`), the
  operator's explicit word that these are the log's keys from now on.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from broker.keys import repository
from broker.keys.store import KeyStore

CHECKPOINT = "checkpoint"
PSEUDONYM = "pseudonym"
FIRST_START = "first_start"
ROTATED = "rotated"
ADOPTED = "adopted"

_PSEUDONYM_TAG = b"once-only-broker/pseudonym-secret-fingerprint/v1"
_WHAT_TO_DO = (
    "point BROKER_KEYS_DIR at this broker's keys, or run `broker keys adopt --yes` to make these the log's keys"
)


class KeysMismatch(Exception):
    """The keys directory does not hold the keys this database's log belongs to."""


@dataclass(frozen=True)
class Fingerprint:
    purpose: str
    fingerprint: str
    key_id: str | None


def checkpoint_fingerprint(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


def pseudonym_fingerprint(secret: bytes) -> str:
    return hashlib.sha256(hmac.new(secret, _PSEUDONYM_TAG, hashlib.sha256).digest()).hexdigest()


def of_store(store: KeyStore) -> list[Fingerprint]:
    """The directory's fingerprints: every checkpoint key (active first), then the pseudonym secret.
    Generates the keys of a new directory: callers decide beforehand whether that is allowed."""
    prints = [
        Fingerprint(CHECKPOINT, checkpoint_fingerprint(info.public_key), info.kid)
        for info in store.checkpoint_public_keys()
    ]
    prints.append(Fingerprint(PSEUDONYM, pseudonym_fingerprint(store.pseudonym_secret()), None))
    return prints


def check(session: Session, store: KeyStore, now: datetime) -> list[Fingerprint]:
    """Refuse (:class:`KeysMismatch`) a directory that does not hold the log's keys; record the
    directory's keys where nothing is recorded yet. Returns what it recorded."""
    rows = repository.recorded(session)
    where = store.keys_dir
    if not rows:
        if not store.initialised and repository.keys_in_use(session):
            raise KeysMismatch(
                f"BROKER_KEYS_DIR {where} holds no keys, but this database already holds a log made with "
                f"other keys: {_WHAT_TO_DO}"
            )
        return _record(session, of_store(store), FIRST_START, now)
    checkpoints = {row.fingerprint for row in rows if row.purpose == CHECKPOINT}
    pseudonyms = [row.fingerprint for row in rows if row.purpose == PSEUDONYM]
    if not store.initialised or (pseudonyms and not store.has_pseudonym_secret):
        # Checked before reading any key: reading would generate new ones.
        missing = where if not store.initialised else where / "pseudonym.key"
        raise KeysMismatch(f"{missing} holds no keys of this database's log: {_WHAT_TO_DO}")
    current = of_store(store)
    active = current[0]
    if checkpoints and active.fingerprint not in checkpoints:
        raise KeysMismatch(
            f"the checkpoint key {active.key_id} in {where} did not sign this database's log: {_WHAT_TO_DO}"
        )
    secret = current[-1]
    if pseudonyms and secret.fingerprint != pseudonyms[-1]:
        raise KeysMismatch(
            f"{where / 'pseudonym.key'} is not the secret this database's pseudonyms were made with: {_WHAT_TO_DO}"
        )
    # A purpose with nothing recorded (never expected, but a row may have been deleted by hand)
    # is recorded now rather than refused: the other purpose already vouches for the directory.
    recorded_purposes = {row.purpose for row in rows}
    return _record(session, [p for p in current if p.purpose not in recorded_purposes], FIRST_START, now)


def record_rotation(session: Session, store: KeyStore, now: datetime) -> list[Fingerprint]:
    """Record the directory's checkpoint keys not recorded yet (after ``broker keys rotate``)."""
    known = {row.fingerprint for row in repository.recorded(session) if row.purpose == CHECKPOINT}
    new = [p for p in of_store(store) if p.purpose == CHECKPOINT and p.fingerprint not in known]
    return _record(session, new, ROTATED, now)


def adopt(session: Session, store: KeyStore, now: datetime) -> list[Fingerprint]:
    """Record the directory's keys as the log's keys (generating them if the directory is new).

    Checkpoint keys already recorded are left as they are; the pseudonym secret is recorded
    again unless it already is the newest, because the newest one is the one in use."""
    rows = repository.recorded(session)
    known = {row.fingerprint for row in rows if row.purpose == CHECKPOINT}
    pseudonyms = [row.fingerprint for row in rows if row.purpose == PSEUDONYM]
    new = [
        p
        for p in of_store(store)
        if (p.purpose == CHECKPOINT and p.fingerprint not in known)
        or (p.purpose == PSEUDONYM and (not pseudonyms or pseudonyms[-1] != p.fingerprint))
    ]
    return _record(session, new, ADOPTED, now)


def _record(session: Session, prints: list[Fingerprint], how: str, now: datetime) -> list[Fingerprint]:
    for p in prints:
        repository.add(session, p.purpose, p.fingerprint, p.key_id, how, now)
    return prints
