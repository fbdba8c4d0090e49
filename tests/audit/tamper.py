"""Ways to tamper with a stored log, for the verification tests (each does what an attacker with
write access to the database could do)."""

from __future__ import annotations

import json

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from broker.audit.merkle import leaf_hash
from broker.audit.note import Checkpoint as CheckpointBody
from broker.audit.note import sign_note
from broker.audit.verify import LeafTree
from broker.db.models import Checkpoint, LogEntry, MerkleNode
from broker.db.session import unit_of_work

from .conftest import ORIGIN


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def body_at(sessions: sessionmaker[Session], index: int) -> bytes:
    with sessions() as session:
        return bytes(session.execute(select(LogEntry.body).where(LogEntry.log_index == index)).scalar_one())


def edited(body: bytes, **changes: object) -> bytes:
    entry = json.loads(body)
    entry.update(changes)
    return rfc8785.dumps(entry)


def change_body(engine: Engine, sessions: sessionmaker[Session], index: int, *, rehash: bool) -> bytes:
    """Rewrite who asked for entry ``index``; with ``rehash`` also fix up its recorded leaf hash."""
    body = edited(body_at(sessions, index), requester="someone-else")
    sql(engine, "UPDATE log_entries SET body = :body WHERE log_index = :index", body=body, index=index)
    if rehash:
        sql(
            engine,
            "UPDATE log_entries SET leaf_hash = :leaf WHERE log_index = :index",
            leaf=leaf_hash(body),
            index=index,
        )
    return body


def shift(engine: Engine, first: int, by: int) -> None:
    """Renumber entries from ``first`` on by ``by`` (through negatives: log_index is unique)."""
    sql(
        engine,
        "UPDATE log_entries SET log_index = -(log_index + :by) - 1 WHERE log_index >= :first",
        by=by,
        first=first,
    )
    sql(engine, "UPDATE log_entries SET log_index = -(log_index + 1) WHERE log_index < 0")


def swap(engine: Engine, a: int, b: int) -> None:
    sql(engine, "UPDATE log_entries SET log_index = -1 WHERE log_index = :a", a=a)
    sql(engine, "UPDATE log_entries SET log_index = :a WHERE log_index = :b", a=a, b=b)
    sql(engine, "UPDATE log_entries SET log_index = :b WHERE log_index = -1", b=b)


def insert_entry(sessions: sessionmaker[Session], index: int, template: bytes) -> None:
    body = edited(template, exchange="11111111-2222-4333-8444-555555555555", event="delivered")
    entry = json.loads(body)
    with unit_of_work(sessions) as session:
        row = session.execute(select(LogEntry).where(LogEntry.log_index == 0)).scalar_one()
        session.add(
            LogEntry(
                log_index=index,
                body=body,
                leaf_hash=leaf_hash(body),
                recorded_at=row.recorded_at,
                event=entry["event"],
                exchange_id=entry["exchange"],
            )
        )


def leaves(sessions: sessionmaker[Session]) -> list[bytes]:
    with sessions() as session:
        bodies = session.execute(
            select(LogEntry.body).where(LogEntry.log_index.is_not(None)).order_by(LogEntry.log_index)
        ).scalars()
        return [leaf_hash(bytes(body)) for body in bodies]


def rebuild_tree(sessions: sessionmaker[Session]) -> LeafTree:
    """Recompute the stored node table from the entries as they are now."""
    tree = LeafTree(leaves(sessions))
    with unit_of_work(sessions) as session:
        session.execute(delete(MerkleNode))
        session.add_all(MerkleNode(level=level, index=index, hash=tree[(level, index)]) for level, index in tree)
    return tree


def resign(
    sessions: sessionmaker[Session], tree: LeafTree, sizes: list[int], key: Ed25519PrivateKey, name: str = ORIGIN
) -> None:
    """Replace the checkpoints for ``sizes`` with ones signed over ``tree`` by ``key``."""
    with unit_of_work(sessions) as session:
        for size in sizes:
            root = tree.root(size)
            note = sign_note(CheckpointBody(ORIGIN, size, root).body(), name, key)
            session.execute(update(Checkpoint).where(Checkpoint.tree_size == size).values(root_hash=root, note=note))


def roll_back(sessions: sessionmaker[Session], size: int) -> None:
    """Cut the log back to ``size`` entries, consistently: as if restored from an old backup."""
    with unit_of_work(sessions) as session:
        session.execute(delete(LogEntry).where(LogEntry.log_index >= size))
        session.execute(delete(Checkpoint).where(Checkpoint.tree_size > size))
        for level, index in session.execute(select(MerkleNode.level, MerkleNode.index)).all():
            if (index + 1) << level > size:
                session.execute(delete(MerkleNode).where(MerkleNode.level == level, MerkleNode.index == index))
