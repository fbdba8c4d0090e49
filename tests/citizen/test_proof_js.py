"""The browser's own check of log inclusion proofs (broker/citizen/static/proof-core.mjs, proof.js).

Vectors are built with the broker's own Merkle tree and signed-note code, so the JavaScript is
held to exactly what the server produces: a tree of seven entries with a proof for every index at
every size, checkpoints signed by fresh Ed25519 keys, and tampered variants of all of it. Node
(>= 20, which has WebCrypto Ed25519) runs them through the pure core; a headless Chromium, when
there is one, runs proof.js on a page served with ``script-src 'self'``.

Without ``node`` (or Chromium and Playwright) the tests skip, unless BROKER_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import merkle
from broker.audit.note import Checkpoint, key_id, sign_note
from broker.keys.jwk import key_id as jwk_thumbprint
from broker.keys.jwk import public_jwk

STATIC_DIR = Path(__file__).resolve().parents[2] / "broker" / "citizen" / "static"
CORE = STATIC_DIR / "proof-core.mjs"
RUNNER = Path(__file__).with_name("proof_vectors.mjs")
REQUIRE = os.environ.get("BROKER_TEST_REQUIRE_BROWSER") == "1"

ORIGIN = "broker.example/provenance-log"
SIZE = 7  # the size of the tree the tampered vectors are cut from

ENTRIES = [
    b'{"seq":0,"kind":"exchange.requested","evidence":"birth-certificate"}',
    b'{"seq":1,"kind":"preview.approved"}',
    "Geburtsurkunde für Jürgen Müller".encode(),
    b'{"seq":3,"kind":"exchange.delivered","bytes":"\x00\x01\xfe\xff"}',
    b"x",
    b'{"seq":5,"kind":"consent.revoked"}' * 20,
    b'{"seq":6,"kind":"exchange.delivered"}\n',
]

Expected = tuple[str, str | None]
OK: Expected = ("ok", None)


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE:
        pytest.fail(f"BROKER_TEST_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def fixed_key(label: str) -> Ed25519PrivateKey:
    """A key derived from ``label``, so the vectors (and test ids) are the same every run."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


BROKER_KEY = fixed_key("broker checkpoint key")
RETIRED_KEY = fixed_key("broker retired checkpoint key")
OTHER_KEY = fixed_key("someone else's key")
WITNESS_KEY = fixed_key("witness key")
REQUEST_KEY = fixed_key("broker request key")


class Log:
    """The broker's stored tree for ``entries``: the perfect-subtree rows the integrator writes."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.nodes: dict[merkle.NodeId, bytes] = {}
        tree = merkle.CompactTree()
        for entry in entries:
            for level, index, value in tree.append(merkle.leaf_hash(entry)):
                self.nodes[(level, index)] = value

    def root(self, size: int) -> bytes:
        return merkle.tree_root(size, self.nodes)

    def proof(self, index: int, size: int) -> list[bytes]:
        hashes = merkle.assemble_proof(merkle.inclusion_proof_ranges(index, size), self.nodes)
        merkle.verify_inclusion(merkle.leaf_hash(self.entries[index]), index, size, hashes, self.root(size))
        return hashes

    def note(self, size: int, key: Ed25519PrivateKey = BROKER_KEY, *, name: str = ORIGIN, origin: str = ORIGIN) -> str:
        return sign_note(Checkpoint(origin, size, self.root(size)).body(), name, key)

    def entry(
        self,
        index: int,
        size: int,
        *,
        data: bytes | None = None,
        hashes: list[bytes] | None = None,
        claimed_index: int | None = None,
        claimed_size: int | None = None,
    ) -> dict[str, Any]:
        return {
            "index": index if claimed_index is None else claimed_index,
            "tree_size": size if claimed_size is None else claimed_size,
            "entry": b64(self.entries[index] if data is None else data),
            "hashes": [b64(h) for h in (self.proof(index, size) if hashes is None else hashes)],
        }


LOG = Log(ENTRIES)


def checkpoint_jwk(key: Ed25519PrivateKey, name: str | None = ORIGIN, **extra: str) -> dict[str, Any]:
    """A checkpoint key as /.well-known/broker-keys lists it, plus the note key name."""
    public = key.public_key()
    jwk: dict[str, Any] = {
        **public_jwk(public),
        "kid": jwk_thumbprint(public),
        "use": "sig",
        "alg": "EdDSA",
        "status": "active",
    }
    if name is not None:
        jwk["name"] = name
    return {**jwk, **extra}


BROKER_JWKS = [checkpoint_jwk(BROKER_KEY)]


@dataclass
class Case:
    name: str
    checkpoint: Any
    entries: list[dict[str, Any]]
    expected: list[Expected]
    keys: list[dict[str, Any]] = field(default_factory=lambda: BROKER_JWKS)

    def data(self) -> dict[str, Any]:
        entries = [{"mark": f"{self.name}#{i}", **entry} for i, entry in enumerate(self.entries)]
        return {"checkpoint": self.checkpoint, "keys": self.keys, "entries": entries}


def flip_bit(raw: bytes, bit: int) -> bytes:
    out = bytearray(raw)
    out[bit // 8 % len(out)] ^= 1 << bit % 8
    return bytes(out)


def signature_line(note: str) -> str:
    return note.rsplit("\n\n", 1)[1]


def genuine_cases() -> list[Case]:
    cases = []
    for size in range(1, SIZE + 1):
        entries = [LOG.entry(index, size) for index in range(size)]
        cases.append(Case(f"genuine/size-{size}", LOG.note(size), entries, [OK] * size))
    note = LOG.note(SIZE)
    everything = [LOG.entry(index, SIZE) for index in range(SIZE)]
    witness = signature_line(LOG.note(SIZE, WITNESS_KEY, name="witness.example"))
    sealing_key = ec.derive_private_key(12345, ec.SECP256R1()).public_key()
    sealing_jwk = {**public_jwk(sealing_key), "kid": jwk_thumbprint(sealing_key), "alg": "ES256", "x5c": ["AA=="]}
    cases += [
        Case("genuine/cosigned-by-unknown-witness", note + witness, everything, [OK] * SIZE),
        Case("genuine/key-without-name", note, everything, [OK] * SIZE, keys=[checkpoint_jwk(BROKER_KEY, None)]),
        Case(
            "genuine/whole-jwks",
            note,
            everything,
            [OK] * SIZE,
            keys=[
                sealing_jwk,
                checkpoint_jwk(REQUEST_KEY, purpose="requests"),
                checkpoint_jwk(RETIRED_KEY, status="retired"),
                *BROKER_JWKS,
            ],
        ),
        Case(
            "genuine/signed-by-retired-key",
            LOG.note(SIZE, RETIRED_KEY),
            everything,
            [OK] * SIZE,
            keys=[checkpoint_jwk(RETIRED_KEY, status="retired"), *BROKER_JWKS],
        ),
        Case(
            "genuine/non-ascii-origin",
            LOG.note(SIZE, name="bröker.example/log", origin="bröker.example/log"),
            everything,
            [OK] * SIZE,
            keys=[checkpoint_jwk(BROKER_KEY, "bröker.example/log")],
        ),
    ]
    return cases


def tampered_cases() -> list[Case]:
    note = LOG.note(SIZE)
    body = note.rsplit("\n\n", 1)[0] + "\n"
    root_line = b64(LOG.root(SIZE))
    root_mismatch: Expected = ("bad", "root-mismatch")
    entry_malformed: Expected = ("bad", "entry-malformed")
    indices = range(SIZE)

    def every_entry(expected: Expected) -> tuple[list[dict[str, Any]], list[Expected]]:
        return [LOG.entry(index, SIZE) for index in indices], [expected] * SIZE

    cases: list[Case] = []

    def add(name: str, checkpoint: Any, entries: list[dict[str, Any]], expected: Expected, **kw: Any) -> None:
        cases.append(Case(name, checkpoint, entries, [expected] * len(entries), **kw))

    def add_for_note(name: str, checkpoint: Any, expected: Expected, **kw: Any) -> None:
        entries, results = every_entry(expected)
        cases.append(Case(name, checkpoint, entries, results, **kw))

    # The entries and their proofs.
    add(
        "tampered/entry-bit-flipped",
        note,
        [
            LOG.entry(i, SIZE, data=flip_bit(ENTRIES[i], bit))
            for i in indices
            for bit in (0, 7, 8 * len(ENTRIES[i]) - 1)
        ],
        root_mismatch,
    )
    add(
        "tampered/entry-appended-byte",
        note,
        [LOG.entry(i, SIZE, data=ENTRIES[i] + b" ") for i in indices],
        root_mismatch,
    )
    wrong_hashes = []
    for i in indices:
        proof = LOG.proof(i, SIZE)
        for k in range(len(proof)):
            wrong_hashes.append(LOG.entry(i, SIZE, hashes=[*proof[:k], flip_bit(proof[k], 100), *proof[k + 1 :]]))
        wrong_hashes.append(LOG.entry(i, SIZE, hashes=list(reversed(proof))))
    add("tampered/wrong-path-hash", note, wrong_hashes, root_mismatch)
    add(
        "tampered/path-of-another-index",
        note,
        [LOG.entry(i, SIZE, hashes=LOG.proof(j, SIZE)) for i in indices for j in indices if i != j],
        root_mismatch,
    )
    add(
        "tampered/entry-claims-another-index",
        note,
        [LOG.entry(i, SIZE, claimed_index=j) for i in indices for j in indices if i != j],
        root_mismatch,
    )
    add(
        "tampered/path-too-long-or-short",
        note,
        [LOG.entry(i, SIZE, hashes=[*LOG.proof(i, SIZE), LOG.root(SIZE)]) for i in indices]
        + [LOG.entry(i, SIZE, hashes=LOG.proof(i, SIZE)[:-1]) for i in indices],
        root_mismatch,
    )
    add("tampered/tree-size-differs", note, [LOG.entry(i, SIZE - 1) for i in range(SIZE - 1)], ("bad", "tree-size"))
    add(
        "tampered/path-for-smaller-tree",
        note,
        [LOG.entry(i, SIZE - 1, claimed_size=SIZE) for i in range(SIZE - 1)],
        root_mismatch,
    )
    cases.append(
        Case(
            "tampered/one-entry-of-seven",
            note,
            [LOG.entry(i, SIZE, data=flip_bit(ENTRIES[i], 3) if i == 3 else None) for i in indices],
            [root_mismatch if i == 3 else OK for i in indices],
        )
    )
    good = LOG.entry(2, SIZE)
    add(
        "malformed/entries",
        note,
        [
            {**good, "entry": good["entry"].rstrip("=")},
            {**LOG.entry(4, SIZE), "entry": "eR=="},  # b"x" is "eA=="; "eR==" has stray bits
            {**good, "entry": good["entry"] + "\n"},
            {**good, "hashes": [*good["hashes"][:-1], b64(LOG.root(SIZE)[:31])]},
            {**good, "hashes": good["hashes"][0]},
            {**good, "index": str(good["index"])},
            {**good, "index": -1},
            {**good, "index": 2.5},
            {**good, "index": SIZE},
            {key: value for key, value in good.items() if key != "tree_size"},
        ],
        entry_malformed,
    )

    # The checkpoint and its signatures.
    other_root = b64(LOG.root(SIZE - 1))
    add_for_note(
        "tampered/checkpoint-root-line-changed", note.replace(root_line, other_root), ("bad", "checkpoint-forged")
    )
    add_for_note(
        "tampered/checkpoint-size-line-changed",
        note.replace(f"\n{SIZE}\n", f"\n{SIZE + 1}\n", 1),
        ("bad", "checkpoint-forged"),
    )
    add_for_note("tampered/signed-by-another-key", LOG.note(SIZE, OTHER_KEY), ("bad", "checkpoint-unsigned"))
    forked = Log([*ENTRIES[:3], b"a rewritten entry", *ENTRIES[4:]])
    cases.append(
        Case(
            "tampered/rewritten-log-signed-by-another-key",
            forked.note(SIZE, OTHER_KEY),
            [forked.entry(i, SIZE) for i in indices],
            [("bad", "checkpoint-unsigned")] * SIZE,
        )
    )
    add_for_note(
        "tampered/key-under-another-name",
        note,
        ("bad", "checkpoint-unsigned"),
        keys=[checkpoint_jwk(BROKER_KEY, "other.example/log")],
    )
    add_for_note(
        "tampered/only-the-request-key",
        note,
        ("bad", "checkpoint-unsigned"),
        keys=[checkpoint_jwk(BROKER_KEY, purpose="requests")],
    )
    add_for_note("tampered/no-keys", note, ("bad", "checkpoint-unsigned"), keys=[])
    add_for_note(
        "tampered/origin-not-the-signers-name",
        LOG.note(SIZE, origin="evil.example/log"),
        ("bad", "origin-mismatch"),
    )
    genuine_line = signature_line(note)
    name, encoded = genuine_line[len("\u2014 ") : -1].split(" ")
    raw = base64.b64decode(encoded)
    add_for_note(
        "tampered/second-bad-signature-by-broker-key",
        note + f"\u2014 {name} {b64(raw[:4] + flip_bit(raw[4:], 9))}\n",
        ("bad", "checkpoint-forged"),
    )
    add_for_note(
        "tampered/short-signature-by-broker-key",
        f"{body}\n\u2014 {name} {b64(raw[:-1])}\n",
        ("bad", "checkpoint-forged"),
    )
    malformed: Expected = ("bad", "checkpoint-malformed")
    add_for_note("malformed/checkpoint-missing", None, malformed)
    add_for_note("malformed/checkpoint-without-signatures", body, malformed)
    add_for_note("malformed/checkpoint-without-final-newline", note[:-1], malformed)
    add_for_note("malformed/checkpoint-control-character", note.replace(ORIGIN, ORIGIN + "\t"), malformed)
    add_for_note(
        "malformed/checkpoint-size-not-canonical",
        sign_note(f"{ORIGIN}\n0{SIZE}\n{root_line}\n", ORIGIN, BROKER_KEY),
        malformed,
    )
    add_for_note(
        "malformed/checkpoint-root-not-32-bytes",
        sign_note(f"{ORIGIN}\n{SIZE}\n{b64(LOG.root(SIZE) + b'!')}\n", ORIGIN, BROKER_KEY),
        malformed,
    )
    return cases


GENUINE = genuine_cases()
TAMPERED = tampered_cases()


def path_vectors() -> tuple[list[dict[str, Any]], list[str]]:
    """Every (index, size) of a 40-leaf tree, with the root each must reach."""
    log = Log([f"leaf {i}".encode() for i in range(40)])
    vectors, roots = [], []
    for size in range(1, 41):
        for index in range(size):
            leaf = merkle.leaf_hash(log.entries[index])
            vectors.append(
                {"index": index, "size": size, "leaf": b64(leaf), "hashes": [b64(h) for h in log.proof(index, size)]}
            )
            roots.append(b64(log.root(size)))
    return vectors, roots


KEY_NAMES = [(ORIGIN, BROKER_KEY), ("bröker.example/log", OTHER_KEY), ("witness.example", WITNESS_KEY)]


@pytest.fixture(scope="module")
def node_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed, so the browser's proof check cannot be run")
    paths, _roots = path_vectors()
    vectors = {
        "cases": [{"name": case.name, "data": case.data()} for case in [*GENUINE, *TAMPERED]],
        "paths": paths,
        "key_ids": [{"name": name, "x": public_jwk(key.public_key())["x"]} for name, key in KEY_NAMES],
        "unsupported": GENUINE[-1].data(),
    }
    vectors_file = tmp_path_factory.mktemp("proof-js") / "vectors.json"
    vectors_file.write_text(json.dumps(vectors), encoding="utf-8")
    run = subprocess.run(
        [node, str(RUNNER), str(CORE), str(vectors_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results: dict[str, Any] = json.loads(run.stdout)
    if results["ed25519"] is None:
        _unavailable(f"node {results['node']} has no WebCrypto Ed25519")
    return results


def _outcomes(results: dict[str, Any], case: Case) -> list[Expected]:
    got = results["cases"][case.name]
    assert [r["mark"] for r in got] == [f"{case.name}#{i}" for i in range(len(case.entries))]
    return [(r["status"], r["code"]) for r in got]


@pytest.mark.parametrize("case", GENUINE, ids=lambda case: case.name)
def test_genuine_proofs_verify(node_results: dict[str, Any], case: Case) -> None:
    assert _outcomes(node_results, case) == case.expected


@pytest.mark.parametrize("case", TAMPERED, ids=lambda case: case.name)
def test_tampered_proofs_fail(node_results: dict[str, Any], case: Case) -> None:
    assert _outcomes(node_results, case) == case.expected
    for result in node_results["cases"][case.name]:
        if result["status"] == "bad":
            assert result["reason"], "a failure must carry a reason for the title attribute"


def test_inclusion_path_fold_matches_the_server_for_every_index_and_size(node_results: dict[str, Any]) -> None:
    _paths, roots = path_vectors()
    assert node_results["paths"] == roots


def test_note_key_ids_match_the_server(node_results: dict[str, Any]) -> None:
    assert node_results["key_ids"] == [key_id(name, key.public_key()).hex() for name, key in KEY_NAMES]


def test_without_ed25519_nothing_is_claimed(node_results: dict[str, Any]) -> None:
    for variant in ("no_ed25519", "no_subtle"):
        results = node_results["unsupported"][variant]
        assert results, variant
        assert {(r["status"], r["code"]) for r in results} == {("unsupported", "unsupported")}, variant


# --- proof.js in a real browser ------------------------------------------------------------------

CSP = "default-src 'none'; script-src 'self'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"
STATIC_FILES = {"proof.js", "proof-core.mjs"}


def embed_json(value: object) -> str:
    """JSON safe inside <script type="application/json">, as the page has to embed it."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def cockpit_page(data: dict[str, Any] | str, marks: list[str]) -> bytes:
    rows = "\n".join(
        f'<li>Eintrag <span id="{mark}" class="proof-pending" data-proof="pending">Prüfung im Browser …</span></li>'
        for mark in marks
    )
    block = data if isinstance(data, str) else embed_json(data)
    return (
        '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Datencockpit</title>'
        f'<script type="application/json" id="log-proofs">{block}</script>'
        '<script type="module" src="/citizen/static/proof.js"></script>'
        f"</head><body><ul>{rows}</ul></body></html>"
    ).encode()


class _Server:
    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                name = path.removeprefix("/citizen/static/")
                if path.startswith("/citizen/static/") and name in STATIC_FILES:
                    body, content_type = (STATIC_DIR / name).read_bytes(), "text/javascript; charset=utf-8"
                elif path in pages:
                    body, content_type = pages[path], "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Security-Policy", CSP)
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    served = _Server()
    thread = threading.Thread(target=served.httpd.serve_forever, daemon=True)
    thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


BrowserCheck = Callable[[str, str], tuple[dict[str, dict[str, str | None]], list[str]]]


@pytest.fixture(scope="module")
def browser_check(server: _Server) -> Iterator[BrowserCheck]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    executable = os.environ.get("BROKER_TEST_CHROMIUM") or next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
    )
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=executable,
                # proof.test is an insecure origin (no WebCrypto there) that still reaches the server.
                args=["--no-sandbox", f"--host-resolver-rules=MAP proof.test 127.0.0.1:{server.port}"],
            )
        except PlaywrightError as exc:
            _unavailable(f"no Chromium to run proof.js in ({str(exc).splitlines()[0]})")

        def check(url: str, path: str) -> tuple[dict[str, dict[str, str | None]], list[str]]:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(url + path)
            page.wait_for_function("() => document.querySelector('[data-proof=\"pending\"]') === null", timeout=15000)
            states = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('[data-proof]')].map((el) => [el.id, {
                    proof: el.dataset.proof, text: el.textContent, className: el.className,
                    title: el.getAttribute('title'), reason: el.dataset.proofReason ?? null}]))"""
            )
            page.close()
            return states, console

        yield check
        browser.close()


def test_proof_js_marks_rows_in_the_browser(server: _Server, browser_check: BrowserCheck) -> None:
    case = GENUINE[SIZE - 1]
    data = case.data()
    tampered = {**data["entries"][3], "mark": "row-tampered", "entry": b64(flip_bit(ENTRIES[3], 5))}
    data["entries"] = [*data["entries"], tampered]
    marks = [entry["mark"] for entry in data["entries"]] + ["row-without-data"]
    server.pages["/cockpit"] = cockpit_page(data, marks)

    states, console = browser_check(f"http://127.0.0.1:{server.port}", "/cockpit")

    assert not [line for line in console if "Content Security Policy" in line], console
    for entry in case.data()["entries"]:
        assert states[entry["mark"]] == {
            "proof": "ok",
            "text": "✓ im Log bestätigt",
            "className": "proof-ok",
            "title": None,
            "reason": None,
        }
    assert states["row-tampered"]["proof"] == "bad"
    assert states["row-tampered"]["text"] == "✗ Prüfung fehlgeschlagen"
    assert states["row-tampered"]["className"] == "proof-bad"
    assert states["row-tampered"]["reason"] == "root-mismatch"
    assert states["row-tampered"]["title"]
    assert states["row-without-data"]["proof"] == "bad"
    assert states["row-without-data"]["reason"] == "data-missing"


def test_proof_js_rejects_a_forged_checkpoint_in_the_browser(server: _Server, browser_check: BrowserCheck) -> None:
    data = next(case for case in TAMPERED if case.name == "tampered/signed-by-another-key").data()
    server.pages["/forged"] = cockpit_page(data, [entry["mark"] for entry in data["entries"]])

    states, _console = browser_check(f"http://127.0.0.1:{server.port}", "/forged")

    assert {(s["proof"], s["reason"]) for s in states.values()} == {("bad", "checkpoint-unsigned")}


def test_proof_js_on_an_insecure_origin_claims_nothing(server: _Server, browser_check: BrowserCheck) -> None:
    data = GENUINE[SIZE - 1].data()
    server.pages["/insecure"] = cockpit_page(data, [entry["mark"] for entry in data["entries"]])

    states, _console = browser_check("http://proof.test", "/insecure")

    assert states
    for state in states.values():
        assert state["proof"] == "unsupported"
        assert state["text"] == "? Prüfung im Browser nicht möglich"
        assert state["className"] == "proof-unsupported"


def test_proof_js_with_unreadable_data_leaves_nothing_pending(server: _Server, browser_check: BrowserCheck) -> None:
    server.pages["/broken"] = cockpit_page("{not json", ["row-a", "row-b"])

    states, _console = browser_check(f"http://127.0.0.1:{server.port}", "/broken")

    assert {(s["proof"], s["reason"]) for s in states.values()} == {("bad", "data-missing")}
