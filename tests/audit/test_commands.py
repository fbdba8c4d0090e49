"""``broker audit integrate | checkpoint | pseudonym`` (verify and export have their own test files)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from broker.audit.commands import audit
from broker.audit.note import Verifier, open_checkpoint
from broker.keys.pseudonym import subject_pseudonym
from broker.keys.store import KeyStore

from .conftest import ORIGIN, Log

pytestmark = pytest.mark.usefixtures("cli_env")


def run(*args: str) -> Result:
    return CliRunner().invoke(audit, list(args))


def test_integrate_and_print_the_checkpoint(log: Log, keys: KeyStore) -> None:
    assert run("checkpoint").exit_code == 1
    log.record(7)
    # The entries name pseudonyms: integrating needs the keys that made them, never new ones
    # (an empty keys directory is refused, tests/chaos/test_keys_mismatch.py).
    keys.checkpoint_key()
    keys.pseudonym_secret()
    result = run("integrate", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert result.output == "integrated 7 entries; tree size 7\n"
    assert run("integrate").output == "integrated 0 entries; tree size 7\n"
    note = run("checkpoint").output
    checkpoint, _ = open_checkpoint(note, [Verifier(ORIGIN, keys.checkpoint_key()[0].public_key)])
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, 7)


def test_pseudonyms_match_what_the_broker_records(keys: KeyStore) -> None:
    secret = keys.pseudonym_secret()
    by_idnr = run("pseudonym", "--idnr", "12345678995")
    assert by_idnr.exit_code == 0, by_idnr.output
    assert by_idnr.output == f"{subject_pseudonym(secret, idnr='12345678995')}  (idnr)\n"
    both = run(
        "pseudonym",
        "--idnr",
        "123 456 789 95",
        "--family-name",
        "MUSTERMANN",
        "--given-name",
        " Erika ",
        "--birth-date",
        "1964-08-12",
    )
    assert both.exit_code == 0, both.output
    by_name = subject_pseudonym(secret, family_name="Mustermann", given_name="Erika", birth_date="1964-08-12")
    assert both.output.splitlines() == [
        f"{subject_pseudonym(secret, idnr='12345678995')}  (idnr)",
        f"{by_name}  (name and birth date)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --idnr"),
        (("--family-name", "Mustermann"), "go together"),
        (("--idnr", "123"), "11 digits"),
        (("--family-name", "M", "--given-name", "E", "--birth-date", "12.08.1964"), "YYYY-MM-DD"),
    ],
)
def test_pseudonym_usage_errors(keys: KeyStore, args: tuple[str, ...], message: str) -> None:
    keys.pseudonym_secret()
    result = run("pseudonym", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_pseudonym_never_invents_a_secret(keys: KeyStore) -> None:
    result = run("pseudonym", "--idnr", "12345678995")
    assert result.exit_code == 1
    assert "no pseudonym secret" in result.output
    assert not (keys.keys_dir / "pseudonym.key").exists()
