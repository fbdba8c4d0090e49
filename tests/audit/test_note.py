"""Signed notes and checkpoints, checked against the published Go sumdb/note and C2SP examples."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.note import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    NoteError,
    Verifier,
    check_key_name,
    format_signer_key,
    format_vkey,
    key_id,
    open_checkpoint,
    open_note,
    parse_signer_key,
    sign_note,
)

# Published example keys and notes of golang.org/x/mod/sumdb/note (example_test.go, note_test.go).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# C2SP tlog-checkpoint example body.
SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_CHECKPOINT_SIG = (
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

peter = Verifier.from_vkey(PETER_VKEY)
enoch = Verifier.from_vkey(ENOCH_VKEY)


def _fresh_key(name: str = "broker.example/log") -> tuple[Ed25519PrivateKey, Verifier]:
    private_key = Ed25519PrivateKey.generate()
    return private_key, Verifier(name, private_key.public_key())


# --- keys -----------------------------------------------------------------------------------


def test_published_key_ids_and_key_strings_round_trip() -> None:
    assert peter.key_id == bytes.fromhex("c74f20a3")
    assert enoch.key_id == bytes.fromhex("af0cfe78")
    assert peter.vkey() == PETER_VKEY
    assert enoch.vkey() == ENOCH_VKEY
    name, private_key = parse_signer_key(PETER_SKEY)
    assert name == "PeterNeumann"
    assert key_id(name, private_key.public_key()) == peter.key_id
    assert format_signer_key(name, private_key) == PETER_SKEY
    assert format_vkey(name, private_key.public_key()) == PETER_VKEY


def test_signing_reproduces_the_published_note() -> None:
    # Ed25519 is deterministic, so the published key must yield the published signature.
    name, private_key = parse_signer_key(PETER_SKEY)
    assert sign_note(TEXT, name, private_key) == TEXT + "\n" + PETER_SIG


def test_published_note_opens() -> None:
    assert open_note(TEXT + "\n" + PETER_SIG, [peter]) == (TEXT, ["PeterNeumann"])
    assert open_note((TEXT + "\n" + PETER_SIG).encode(), [peter]) == (TEXT, ["PeterNeumann"])
    both = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter, enoch])
    assert both == (TEXT, ["PeterNeumann", "EnochRoot"])


def _manglings(key: str) -> list[str]:
    substrings = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)]
    bumped = [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
    return [k for k in substrings + bumped if k != key]


def test_every_mangled_verifier_key_is_rejected() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(NoteError):
            Verifier.from_vkey(bad)


def test_every_mangled_signer_key_is_rejected() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(NoteError):
            parse_signer_key(bad)


@pytest.mark.parametrize(
    "vkey",
    [
        # From the Go tests: wrong key length and unknown algorithm, each with a matching key id.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "nbsp\u00a0here", "ctl\x01", "line\n"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        check_key_name(name)
    with pytest.raises(NoteError):
        sign_note(TEXT, name, Ed25519PrivateKey.generate())


# --- notes ----------------------------------------------------------------------------------


def test_round_trip_with_fresh_key_and_blank_lines_in_body() -> None:
    # The C2SP spec's own example body contains a blank line; the last one separates signatures.
    body = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    private_key, verifier = _fresh_key("quasimodo.example/salvatore")
    note = sign_note(body, verifier.name, private_key)
    assert open_note(note, [verifier]) == (body, ["quasimodo.example/salvatore"])


def test_tampered_body_is_rejected() -> None:
    note = TEXT + "\n" + PETER_SIG
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("cryptography", "cryptographY"), [peter])


def test_tampered_signature_is_rejected() -> None:
    sig_b64 = PETER_SIG.split(" ")[2].strip()
    raw = bytearray(base64.b64decode(sig_b64))
    raw[10] ^= 1
    note = TEXT + "\n" + PETER_SIG.replace(sig_b64, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, [peter])
    # The Go tests' variant: extra characters inside the base64 change the signature length.
    with pytest.raises(NoteError, match="does not verify"):
        open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [peter])


def test_wrong_key_is_rejected() -> None:
    _, stranger = _fresh_key("PeterNeumann")
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(TEXT + "\n" + PETER_SIG, [stranger])
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(TEXT + "\n" + PETER_SIG, [])


def test_signature_by_another_key_under_a_trusted_name_is_ignored() -> None:
    private_key, _ = _fresh_key()
    signature_line = sign_note(TEXT, "PeterNeumann", private_key).split("\n\n")[1]
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(TEXT + "\n" + signature_line, [peter])
    assert open_note(TEXT + "\n" + signature_line + PETER_SIG, [peter])[1] == ["PeterNeumann"]


def test_unknown_signer_lines_are_ignored() -> None:
    assert open_note(TEXT + "\n" + ENOCH_SIG + PETER_SIG, [peter]) == (TEXT, ["PeterNeumann"])
    # An unknown key's signature is not checked at all, even if it is garbage.
    garbage = "— somebody.example/else " + base64.b64encode(b"\x00" * 70).decode() + "\n"
    assert open_note(TEXT + "\n" + PETER_SIG + garbage, [peter]) == (TEXT, ["PeterNeumann"])


def test_bad_signature_from_a_known_key_rejects_even_with_another_good_one() -> None:
    bad_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    with pytest.raises(NoteError, match="EnochRoot"):
        open_note(TEXT + "\n" + PETER_SIG + bad_enoch, [peter, enoch])


def test_duplicate_signature_lines_are_tolerated() -> None:
    assert open_note(TEXT + "\n" + PETER_SIG + PETER_SIG, [peter]) == (TEXT, ["PeterNeumann"])


def test_ambiguous_verifiers_are_rejected() -> None:
    _, other = _fresh_key("PeterNeumann")
    impostor = Verifier.__new__(Verifier)
    object.__setattr__(impostor, "name", "PeterNeumann")
    object.__setattr__(impostor, "public_key", other.public_key)
    object.__setattr__(impostor, "key_id", peter.key_id)
    object.__setattr__(impostor, "_public_raw", b"\x00" * 32)
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(TEXT + "\n" + PETER_SIG, [peter, impostor])
    assert open_note(TEXT + "\n" + PETER_SIG, [peter, Verifier.from_vkey(PETER_VKEY)])[1] == ["PeterNeumann"]


def test_too_many_signatures() -> None:
    assert open_note(TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [peter])[1] == ["PeterNeumann"]
    with pytest.raises(NoteError, match="limit"):
        open_note(TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), [peter])


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (TEXT, "no blank line"),
        (TEXT + "\n", "no signature lines"),
        (TEXT + PETER_SIG, "no blank line"),  # missing blank line
        (TEXT + "\n" + PETER_SIG[:-1], "end with a newline"),
        (TEXT + "\n" + PETER_SIG + "\n", "no signature lines"),
        ("\x01" + TEXT + "\n" + PETER_SIG, "control characters"),
        (TEXT.replace("\n", "\r\n") + "\r\n" + PETER_SIG, "control characters"),
        (TEXT + "\n" + PETER_SIG.replace("— PeterNeumann", "— Peter Neumann"), "must be"),
        (TEXT + "\n" + PETER_SIG.replace("— ", "-- "), "em dash"),
        (TEXT + "\n" + PETER_SIG.replace("— ", "—"), "em dash"),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "em dash"),
        (TEXT + "\n" + PETER_SIG.replace("nAM=", "nAM"), "base64"),
        (TEXT + "\n" + PETER_SIG.replace("nAM=", "nAN="), "canonical"),
        (TEXT + "\n— PeterNeumann x08g\n", "too short"),
        (TEXT + "\n— PeterNeumann \n", "too short"),
        (TEXT + "\n— a+b x08go/ZJkuBS9UG/SffcvIAQ==\n", "key name"),
    ],
)
def test_malformed_notes(note: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        open_note(note, [peter])


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [peter])
    with pytest.raises(NoteError, match="UTF-8"):
        open_note("\ud800" + TEXT + "\n" + PETER_SIG, [peter])


@pytest.mark.parametrize("body", ["", "no final newline", "tab\tinside\n", "\ud800\n"])
def test_sign_rejects_bad_bodies(body: str) -> None:
    private_key, verifier = _fresh_key()
    with pytest.raises(NoteError):
        sign_note(body, verifier.name, private_key)


# --- checkpoints ----------------------------------------------------------------------------


def test_spec_checkpoint_parses_and_round_trips() -> None:
    checkpoint = Checkpoint.parse(SPEC_CHECKPOINT)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.body() == SPEC_CHECKPOINT


def test_spec_checkpoint_note_is_well_formed_but_from_an_unknown_key() -> None:
    # The spec publishes no public key, so all we can check is that the note parses and the
    # only objection is the missing trusted signature.
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_checkpoint(SPEC_CHECKPOINT + "\n" + SPEC_CHECKPOINT_SIG, [peter])


def test_signed_checkpoint_round_trip_with_extensions() -> None:
    private_key, verifier = _fresh_key("broker.example/log")
    checkpoint = Checkpoint("broker.example/log", 42, bytes(range(32)), ("ext one", "ext-two"))
    note = sign_note(checkpoint.body(), verifier.name, private_key)
    assert open_checkpoint(note, [verifier]) == (checkpoint, ["broker.example/log"])
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_empty_tree_checkpoint() -> None:
    checkpoint = Checkpoint("o", 0, bytes(32))
    assert checkpoint.body() == "o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n1\n" + ROOT_B64,  # no final newline
        "origin\n1\n",  # too few lines
        "\n1\n" + ROOT_B64 + "\n",  # empty origin
        "origin\n01\n" + ROOT_B64 + "\n",  # leading zero
        "origin\n+1\n" + ROOT_B64 + "\n",
        "origin\n-1\n" + ROOT_B64 + "\n",
        "origin\n 1\n" + ROOT_B64 + "\n",
        "origin\n1.0\n" + ROOT_B64 + "\n",
        "origin\n\u0661\n" + ROOT_B64 + "\n",  # Arabic-Indic digit one
        "origin\n18446744073709551616\n" + ROOT_B64 + "\n",  # 2**64
        "origin\n\n" + ROOT_B64 + "\n",
        "origin\n1\n" + ROOT_B64[:-1] + "\n",  # bad padding
        "origin\n1\n" + ROOT_B64.replace("I=", "J=") + "\n",  # non-canonical
        "origin\n1\nAAAA\n",  # root too short
        "origin\n1\n" + ROOT_B64 + "\n\n",  # empty extension line
        "origin\n1\n" + ROOT_B64 + "\next\n\nmore\n",
        "ori\rgin\n1\n" + ROOT_B64 + "\n",
    ],
)
def test_checkpoint_parse_errors(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_checkpoint_constructor_validates() -> None:
    for args in [
        ("", 1, bytes(32), ()),
        ("a\nb", 1, bytes(32), ()),
        ("o", -1, bytes(32), ()),
        ("o", 2**64, bytes(32), ()),
        ("o", 1, bytes(31), ()),
        ("o", 1, bytes(32), ("",)),
        ("o", 1, bytes(32), ("a\nb",)),
    ]:
        with pytest.raises(CheckpointError):
            Checkpoint(*args)
