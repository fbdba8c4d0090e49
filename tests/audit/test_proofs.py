"""Proofs and receipts from the stored tree agree with the pure RFC 9162 verifiers."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import proofs, repository
from broker.audit.merkle import root_from_leaf_hashes, verify_consistency, verify_inclusion
from broker.audit.proofs import ProofUnavailable
from broker.audit.service import record
from broker.db.session import unit_of_work

from .conftest import Log, facts
from .tamper import leaves


@pytest.fixture
def grown(log: Log) -> Log:
    log.grow(1, 2, 4, 6, 4)  # checkpoints at 1, 3, 7, 13, 17
    return log


def test_every_inclusion_proof_verifies(grown: Log) -> None:
    hashes = leaves(grown.sessions)
    with grown.sessions() as session:
        for size in range(1, 18):
            root = root_from_leaf_hashes(hashes[:size])
            for index in range(size):
                proof = proofs.inclusion_proof(session, index, size)
                assert proof.leaf_hash == hashes[index]
                verify_inclusion(proof.leaf_hash, index, size, proof.hashes, root)


def test_every_consistency_proof_verifies(grown: Log) -> None:
    hashes = leaves(grown.sessions)
    roots = [root_from_leaf_hashes(hashes[:size]) for size in range(18)]
    with grown.sessions() as session:
        for new in range(1, 18):
            for old in range(1, new + 1):
                proof = proofs.consistency_proof(session, old, new)
                verify_consistency(old, new, roots[old], roots[new], proof.hashes)


def test_sizes_default_to_the_latest_checkpoint(grown: Log) -> None:
    with grown.sessions() as session:
        assert proofs.inclusion_proof(session, 3).tree_size == 17
        assert proofs.consistency_proof(session, 7).tree_size == 17


def test_as_json_uses_standard_base64(grown: Log) -> None:
    with grown.sessions() as session:
        body = proofs.inclusion_proof(session, 0, 17).as_json()
    assert set(body) == {"index", "tree_size", "leaf_hash", "hashes"}
    assert all(len(h) == 44 and h.endswith("=") for h in body["hashes"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("call", "status", "reason"),
    [
        (lambda s: proofs.inclusion_proof(s, 17, 17), 400, "audit.index_out_of_range"),
        (lambda s: proofs.inclusion_proof(s, 0, 18), 404, "audit.tree_size_unknown"),
        (lambda s: proofs.consistency_proof(s, 0, 5), 400, "audit.old_size_invalid"),
        (lambda s: proofs.consistency_proof(s, 6, 5), 400, "audit.sizes_out_of_order"),
        (lambda s: proofs.consistency_proof(s, 18, 18), 404, "audit.tree_size_unknown"),
        (lambda s: proofs.consistency_proof(s, 3, 18), 404, "audit.tree_size_unknown"),
    ],
)
def test_unanswerable_requests(grown: Log, call: object, status: int, reason: str) -> None:
    with grown.sessions() as session, pytest.raises(ProofUnavailable) as raised:
        call(session)  # type: ignore[operator]
    assert (raised.value.status, raised.value.reason) == (status, reason)


def test_an_empty_log_has_no_proofs(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ProofUnavailable) as raised:
        proofs.inclusion_proof(session, 0)
    assert raised.value.reason == "audit.log_empty"


def test_receipt_grows_from_leaf_hash_to_inclusion_proof(log: Log) -> None:
    log.grow(3)
    [seq] = log.record(1)
    with log.sessions() as session:
        queued = proofs.receipt(session, seq)
    assert queued is not None
    assert (queued.log_index, queued.tree_size, queued.inclusion_proof) == (None, None, None)

    log.record(2)
    log.integrate()
    with log.sessions() as session:
        receipt = proofs.receipt(session, seq)
        latest = repository.latest_checkpoint(session)
    assert receipt is not None and latest is not None
    assert (receipt.log_index, receipt.tree_size, receipt.checkpoint) == (3, 6, latest.note)
    assert receipt.leaf_hash == queued.leaf_hash
    assert receipt.inclusion_proof is not None
    verify_inclusion(
        base64.b64decode(receipt.leaf_hash),
        3,
        6,
        [base64.b64decode(h) for h in receipt.inclusion_proof],
        latest.root_hash,
    )


def test_receipt_within_the_delivering_transaction_needs_no_query(log: Log) -> None:
    with unit_of_work(log.sessions) as session:
        entry = record(session, facts(1, event="delivered"))
        session.flush()
        found = proofs.receipt(session, entry.seq)
    assert found is not None and found.log_index is None


def test_no_receipt_without_a_delivery_entry(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert proofs.receipt(session, None) is None
        assert proofs.receipt(session, 12345) is None
