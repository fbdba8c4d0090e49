"""The cockpit and the citizen's copy, in process: exactly the citizen's exchanges, each with a
log entry whose proof checks against the signed checkpoint, and nothing the law still withholds."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.integrator import integrate
from broker.audit.merkle import leaf_hash, verify_inclusion
from broker.audit.note import Verifier, open_checkpoint
from broker.citizen import service
from broker.citizen.identity import Citizen
from broker.citizen.service import Cockpit
from broker.exchange.lifecycle import State
from broker.keys.store import KeyStore
from tests.world import World

ORIGIN = "test.example/once-only"
JAN = {"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"}


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", origin=ORIGIN)


def integrated(world: World, keys: KeyStore) -> None:
    with world.database.unit_of_work() as session:
        integrate(session, keys, ORIGIN, world.clock.now())


def cockpit(world: World, keys: KeyStore, citizen: Citizen) -> Cockpit:
    with world.database.read() as session:
        return service.cockpit(
            session,
            citizen,
            world.deps.registry.get(),
            world.clock.now(),
            consents=[],
            keys=keys.checkpoint_public_keys(),
            preview_path=world.previews.path,
        )


def export(world: World, keys: KeyStore, citizen: Citizen) -> dict[str, Any]:
    with world.database.read() as session:
        return service.export(
            session, citizen, world.deps.registry.get(), world.clock.now(), keys=keys.checkpoint_public_keys()
        )


def test_the_cockpit_lists_exactly_the_citizens_exchanges(world: World, keys: KeyStore) -> None:
    erikas = {world.request().exchange.id, world.request(purpose="wohngeld").exchange.id}
    jans = {world.request(subject=JAN).exchange.id}
    held = world.request(preview=True).exchange.id
    integrated(world, keys)
    erika, jan = world.citizen(), world.citizen(JAN)

    mine = cockpit(world, keys, erika)
    listed = {row.exchange_id for row in mine.exchanges}
    # The database is shared with other tests: hers are all there, nobody else's is.
    assert erikas | {held} <= listed and not listed & jans
    assert all(world.exchange(exchange_id).subject_pseudonym in erika.pseudonyms for exchange_id in listed)
    his = {row.exchange_id for row in cockpit(world, keys, jan).exchanges}
    assert jans <= his and not his & listed
    delivered = next(row for row in mine.exchanges if row.exchange_id in erikas)
    assert (delivered.requester, delivered.evidence_type, delivered.purpose, delivered.basis) == (
        world.requester.name,
        "Meldebescheinigung",
        "Wohngeldantrag",
        "§ 23 WoGG",
    )
    assert delivered.state == State.DELIVERED and delivered.log_index is not None
    # The held one waits for her, with its page.
    assert world.previews.path(held) in [row.preview_path for row in mine.pending_previews]
    # One proof per row, for the entry that records where the exchange stands.
    assert sorted(e["index"] for e in mine.proofs["entries"]) == sorted(r.log_index for r in mine.exchanges)
    assert "Schulz" not in json.dumps(mine.proofs) and "Mustermann" not in json.dumps(mine.proofs)


def test_the_citizens_copy_verifies_without_the_broker(world: World, keys: KeyStore) -> None:
    hers = world.request().exchange.id
    world.request(subject=JAN)
    integrated(world, keys)
    erika = world.citizen()
    copy = json.loads(json.dumps(export(world, keys, erika)))  # as downloaded

    jwk = copy["keys"][0]
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    verifier = Verifier(jwk["name"], Ed25519PublicKey.from_public_bytes(raw))
    checkpoint, _ = open_checkpoint(copy["checkpoint"], [verifier])
    assert copy["entries"], "the copy holds her entries"
    for item in copy["entries"]:
        entry = base64.b64decode(item["entry"])
        assert json.loads(entry) == item["content"] and item["content"]["subject"] in erika.pseudonyms
        hashes = [base64.b64decode(h) for h in item["hashes"]]
        verify_inclusion(leaf_hash(entry), item["index"], checkpoint.size, hashes, checkpoint.root)
    # Every entry of her exchange, newest first.
    events = [item["content"]["event"] for item in copy["entries"] if item["content"]["exchange"] == hers]
    assert events == ["delivered", "routed", "received"]


def test_an_exchange_the_law_withholds_appears_only_when_the_rule_allows(world: World, keys: KeyStore) -> None:
    covert = world.request(legal_basis="§ 161 StPO").exchange.id
    integrated(world, keys)
    erika = world.citizen()
    assert world.exchange(covert).state == State.DELIVERED
    assert covert not in {row.exchange_id for row in cockpit(world, keys, erika).exchanges}
    assert all(item["content"]["exchange"] != covert for item in export(world, keys, erika)["entries"])
    assert [event for event, _ in world.events(covert)][-1] == "delivered"  # logged at once all the same

    world.clock.advance(timedelta(days=179))
    assert covert not in {row.exchange_id for row in cockpit(world, keys, erika).exchanges}
    world.clock.advance(timedelta(days=1, seconds=1))
    shown = {row.exchange_id: row for row in cockpit(world, keys, erika).exchanges}
    assert shown[covert].basis == "§ 161 StPO"
    assert any(item["content"]["exchange"] == covert for item in export(world, keys, erika)["entries"])
