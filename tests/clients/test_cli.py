"""`broker clients add`: the token alone on the last line, only its hash stored."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from broker.cli import main
from broker.clients.service import hash_token
from broker.db.models import Client, ClientPermission
from broker.db.session import make_engine, make_session_factory
from broker.demo.seed import DEMO_REGISTRY


def run(database_url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env={"BROKER_DATABASE_URL": database_url})


def test_clients_add_prints_token_and_stores_hash(database_url: str) -> None:
    from broker.db.migrate import upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    # Grants name registered evidence types and purposes.
    assert run(database_url, "registry", "load", str(DEMO_REGISTRY)).exit_code == 0
    result = run(
        database_url,
        "clients", "add", "dk-portal", "--role", "requester",
        "--allow", "urn:de:nachweis:geburtsurkunde",
        "--allow", "urn:de:nachweis:meldebescheinigung=Wohngeldantrag",
        "--agent", "0096:DK22233223",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("bo_") and len(token) > 40
    with make_session_factory(engine)() as session:
        client = session.scalars(select(Client).where(Client.name == "dk-portal")).one()
        grants = {(p.evidence_type_id, p.purpose) for p in session.scalars(select(ClientPermission)).all()}
    engine.dispose()
    assert client.token_hash == hash_token(token) and token not in client.token_hash
    assert client.agent_id == "0096:DK22233223"
    assert grants == {
        ("urn:de:nachweis:geburtsurkunde", None),
        ("urn:de:nachweis:meldebescheinigung", "wohngeld"),  # the purpose's registry id
    }

    again = run(database_url, "clients", "add", "dk-portal", "--role", "requester")
    assert again.exit_code != 0 and "exists already" in again.output
    bad_agent = run(database_url, "clients", "add", "x", "--role", "requester", "--agent", "DK22233223")
    assert bad_agent.exit_code != 0 and "SCHEME:ID" in bad_agent.output
    adapter = run(database_url, "clients", "add", "y", "--role", "adapter")
    assert adapter.exit_code != 0 and "--authority" in adapter.output
