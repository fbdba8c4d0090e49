"""Provenance-log figures on PostgreSQL: ``python -m bench.log [--entries N] [--writers W] …``.

Measures, on a throwaway database of the server at ``BROKER_TEST_POSTGRES_URL`` (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), which it drops at the end:

1. appends/s end to end: W writer processes record entries through ``broker.audit.service.record``
   in their own transactions while the integrator of this process runs every 50 ms; an entry
   counts as appended once it has a log index under a signed checkpoint. Run once with 3 entries
   per transaction (one synchronous exchange writes received, routed and delivered, so commit
   latency bounds it) and once with 100 (commits amortised: the log's own append path);
2. the integrator on a backlog of N entries bulk-loaded into the queue (COPY), batches of 10,000;
3. ``broker audit verify`` on those N entries (leaf hashes, indices, every stored node, every
   checkpoint signature, the checkpoint chain), read from the database;
4. an inclusion proof through the repository (one query for all nodes) on the N-entry tree;
5. ``broker audit export`` of the N entries and ``verify-bundle`` of that export, offline.

Design targets (issue 15): ≥ 5,000 appends/s at 3 entries a transaction, ≤ 5 s to verify 1,000,000
entries, ≤ 2 ms per proof.
Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, make_url

from broker.audit import proofs, repository
from broker.audit.auditor import checkpoint_verifiers, export_database, verify_database
from broker.audit.bundle import verify_bundle
from broker.audit.integrator import BackgroundIntegrator, integrate_all
from broker.audit.merkle import leaf_hash
from broker.audit.service import EntryFacts, record
from broker.db.migrate import upgrade
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.keys.store import KeyStore
from broker.logging import configure_logging

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ORIGIN = "bench.example/once-only-log"
ENTRIES_PER_EXCHANGE = 3
_EVENTS = ("received", "routed", "delivered")


def now() -> datetime:
    return datetime.now(UTC)


def exchange_facts(number: int, event: str, at: datetime) -> EntryFacts:
    return EntryFacts(
        event=event,
        time=at,
        exchange=str(uuid.UUID(int=number)),
        requester="portal-schwerin",
        authority="melderegister-13004",
        evidence_type="urn:de:nachweis:meldebescheinigung",
        purpose="Wohngeldantrag",
        legal_basis="§ 23 WoGG",
        outcome="delivered" if event == "delivered" else None,
        request_digest="ab" * 32,
        evidence_digest="cd" * 32 if event == "delivered" else None,
        subject=f"ps1:{number:064x}",
    )


# --- 1. end-to-end appends -------------------------------------------------------------------------


def writer(url: str, number: int, seconds: float, start_at: float, per_transaction: int) -> tuple[int, float, float]:
    """One broker process's worth of exchange steps, each transaction committing its entries."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    deadline = started + seconds
    exchange = number << 40
    count = 0
    while time.time() < deadline:
        with unit_of_work(sessions) as session:
            at = now()
            for step in range(per_transaction):
                record(session, exchange_facts(exchange, _EVENTS[step % len(_EVENTS)], at))
        count += per_transaction
        exchange += 1
    finished = time.time()
    engine.dispose()
    return count, started, finished


def bench_appends(url: str, keys: KeyStore, writers: int, seconds: float, per_transaction: int) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        before = repository.tree_size(session)
    integrator = BackgroundIntegrator(sessions, keys, ORIGIN, now, interval=0.05)
    integrator.start()
    start_at = time.time() + 3.0  # let the writer processes import and connect first
    context = multiprocessing.get_context("spawn")
    with context.Pool(writers) as pool:
        pending = [pool.apply_async(writer, (url, n, seconds, start_at, per_transaction)) for n in range(writers)]
        results = [p.get() for p in pending]
    # Appended means integrated: a log index under a signed checkpoint.
    integrator.stop()
    integrate_all(sessions, keys, ORIGIN, now)
    drained = time.time()
    with sessions() as session:
        appended = repository.tree_size(session) - before
        checkpoints = len(repository.all_checkpoints(session))
    engine.dispose()
    recorded = sum(count for count, _start, _end in results)
    first = min(start for _count, start, _end in results)
    writing = max(end for _count, _start, end in results) - first
    elapsed = drained - first
    print(
        f"appends end to end ({writers} writer processes, {per_transaction} entries per transaction, "
        f"integrator every 50 ms):"
    )
    print(
        f"  recorded {recorded:>10,} entries in {writing:5.1f} s = {recorded / writing:>9,.0f} entries/s by the writers"
    )
    print(
        f"  appended {appended:>10,} entries in {elapsed:5.1f} s = {appended / elapsed:>9,.0f} appends/s, "
        f"queue drained ({checkpoints:,} checkpoints signed; target >= 5,000)"
    )


# --- 2. the integrator on a backlog ----------------------------------------------------------------


def bulk_queue(url: str, count: int) -> float:
    """Put ``count`` entries into the queue with COPY, as if that many exchange steps had committed."""
    template = exchange_facts(0, "delivered", datetime(2026, 3, 1, tzinfo=UTC))
    placeholder_exchange, placeholder_subject = template.exchange, template.subject
    assert placeholder_exchange is not None and placeholder_subject is not None
    canonical = template.canonical()
    engine = make_engine(url)
    started = time.perf_counter()
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        columns = (
            "body, leaf_hash, recorded_at, event, exchange_id, requester, authority, evidence_type, subject_pseudonym"
        )
        with cursor.copy(f"COPY log_entries ({columns}) FROM STDIN") as copy:
            base = datetime(2026, 3, 1, tzinfo=UTC)
            for number in range(count):
                exchange = str(uuid.UUID(int=number))
                subject = f"ps1:{number:064x}"
                # Same-length substitutions keep the body canonical JSON (RFC 8785) byte for byte.
                body = canonical.replace(placeholder_exchange.encode(), exchange.encode()).replace(
                    placeholder_subject.encode(), subject.encode()
                )
                copy.write_row(
                    (
                        body,
                        leaf_hash(body),
                        base + timedelta(milliseconds=number),
                        "delivered",
                        exchange,
                        "portal-schwerin",
                        "melderegister-13004",
                        "urn:de:nachweis:meldebescheinigung",
                        subject,
                    )
                )
        connection.commit()
    finally:
        connection.close()
    engine.dispose()
    return time.perf_counter() - started


def bench_backlog(url: str, keys: KeyStore, count: int) -> None:
    loaded = bulk_queue(url, count)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    started = time.perf_counter()
    result = integrate_all(sessions, keys, ORIGIN, now)
    elapsed = time.perf_counter() - started
    engine.dispose()
    print(f"integrator on a backlog (queued with COPY in {loaded:.1f} s):")
    print(
        f"  {result.integrated:>10,} entries integrated in {elapsed:5.1f} s = {result.integrated / elapsed:>9,.0f} "
        f"appends/s (batches of 10,000, one signed checkpoint each; tree size {result.tree_size:,})"
    )


# --- 3. to 5. verification and proofs --------------------------------------------------------------


def bench_verify(url: str, keys: KeyStore) -> None:
    """Twice: the first read after the bulk integration also sets PostgreSQL's hint bits on a
    million freshly updated rows (writing them), which a log integrated as it grows has behind it."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    verifiers = checkpoint_verifiers(keys, ORIGIN)
    for run in ("first read after the bulk integration", "again"):
        started = time.perf_counter()
        with sessions() as session:
            report = verify_database(session, verifiers, ORIGIN)
        elapsed = time.perf_counter() - started
        state = "intact" if report.intact else f"NOT intact ({len(report.findings)} findings)"
        print(
            f"verify from the database (broker audit verify), {run}: {report.entries:,} entries, "
            f"{len(report.checkpoints):,} checkpoints in {elapsed:.2f} s, {state} (target <= 5 s for 1,000,000)"
        )
    engine.dispose()


def bench_proofs(url: str, count: int) -> None:
    engine = make_engine(url, pool_size=1)
    sessions = make_session_factory(engine)
    rng = random.Random(1)
    timings = []
    with sessions() as session:
        size = repository.tree_size(session)
        proofs.inclusion_proof(session, 0, size)  # warm the connection and statement cache
        for _ in range(count):
            index = rng.randrange(size)
            started = time.perf_counter()
            proofs.inclusion_proof(session, index, size)
            timings.append(time.perf_counter() - started)
        consistency = []
        for _ in range(count // 4):
            old = rng.randrange(1, size)
            started = time.perf_counter()
            proofs.consistency_proof(session, old, size)
            consistency.append(time.perf_counter() - started)
    engine.dispose()
    timings.sort()
    print(
        f"inclusion proof through the repository (tree size {size:,}, {count:,} random leaves, one query each): "
        f"mean {statistics.fmean(timings) * 1e3:.3f} ms, p50 {timings[len(timings) // 2] * 1e3:.3f} ms, "
        f"p99 {timings[int(len(timings) * 0.99)] * 1e3:.3f} ms (target <= 2 ms)"
    )
    print(f"consistency proof through the repository: mean {statistics.fmean(consistency) * 1e3:.3f} ms")


def bench_bundle(url: str, keys: KeyStore, directory: Path) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    verifiers = checkpoint_verifiers(keys, ORIGIN)
    out = directory / "bundle"
    started = time.perf_counter()
    with sessions() as session:
        summary = export_database(session, verifiers, ORIGIN, out, now())
    exported = time.perf_counter() - started
    engine.dispose()
    started = time.perf_counter()
    result = verify_bundle(out, vkeys=[v.vkey() for v in verifiers])
    checked = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out.iterdir())
    state = "intact" if result.intact else "NOT intact"
    print(
        f"export of {summary.tree_size:,} entries ({size / 1e6:,.0f} MB directory) in {exported:.1f} s; "
        f"verify-bundle offline in {checked:.2f} s, {state}"
    )


def throwaway_database(server: str) -> tuple[str, str]:
    name = f"audit_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False), name


def drop_database(server: str, name: str) -> None:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("BROKER_TEST_POSTGRES_URL") or DEFAULT_SERVER)
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to verify (bulk-loaded)")
    parser.add_argument("--writers", type=int, default=4, help="writer processes for the append figure")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the writers write")
    parser.add_argument(
        "--per-transaction",
        default="3,100",
        help="entries per writer transaction, comma-separated runs (3: one synchronous exchange; "
        "100: commits amortised, so the figure shows the log's own append path)",
    )
    parser.add_argument("--proofs", type=int, default=2_000, help="inclusion proofs to time")
    parser.add_argument("--no-bundle", action="store_true", help="skip export and verify-bundle")
    args = parser.parse_args()
    configure_logging("warning")

    url, name = throwaway_database(args.url)
    print(f"PostgreSQL, throwaway database {name}; {os.cpu_count()} CPUs")
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        with tempfile.TemporaryDirectory(prefix="bench-log-") as directory:
            keys = KeyStore(Path(directory) / "keys", origin=ORIGIN)
            keys.checkpoint_key()
            for per_transaction in (int(n) for n in args.per_transaction.split(",")):
                bench_appends(url, keys, args.writers, args.seconds, per_transaction)
            # The remaining figures are about a log of exactly --entries entries: start afresh.
            drop_database(args.url, name)
            url, name = throwaway_database(args.url)
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            bench_backlog(url, keys, args.entries)
            bench_verify(url, keys)
            bench_proofs(url, args.proofs)
            if not args.no_bundle:
                bench_bundle(url, keys, Path(directory))
    finally:
        drop_database(args.url, name)


if __name__ == "__main__":
    main()
