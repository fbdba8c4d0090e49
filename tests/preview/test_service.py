"""The citizen's preview decision, in process: approve, decline, a second decision, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from broker.citizen.identity import Citizen
from broker.exchange.lifecycle import State
from broker.preview import service
from broker.problems import Problem
from tests.specimen import ERIKA, ERIKA_IDNR
from tests.world import World, erika_evidence_stating

HOOK = "https://portal.example/hook"


def held(world: World) -> tuple[str, str]:
    """An exchange awaiting the citizen, and its preview token."""
    result = world.request(preview=True, callback_url=HOOK)
    assert result.exchange.state == State.AWAITING_PREVIEW
    return result.exchange.id, world.previews.token(result.exchange.id)


MAX_AGE = timedelta(minutes=5)
STRANGER = {"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"}


def decide(world: World, token: str, approve: bool, citizen: Citizen | None = None) -> str:
    """The decision of ``citizen`` (Erika, just signed in, by default): the preview's state, or the refusal."""
    with world.database.unit_of_work() as session:
        access = service.decide(session, world.deps, token, approve, citizen or world.citizen(), MAX_AGE)
    if access.state is None:
        return "not_found"
    return access.refusal or access.state.preview.state


def test_approval_seals_and_delivers_and_calls_back_once(world: World) -> None:
    exchange_id, token = held(world)
    assert decide(world, token, approve=True) == "approved"
    exchange = world.exchange(exchange_id)
    assert exchange.state == State.DELIVERED and len(world.sealer.sealed) == 1
    assert [e for e in world.events(exchange_id)][-3:] == [
        ("preview_requested", "awaiting_preview"),
        ("preview_decided", "approved"),
        ("delivered", "delivered"),
    ]
    assert [c.state for c in world.callbacks(exchange_id)] == ["pending"]
    with pytest.raises(Problem) as again:
        decide(world, token, approve=False)
    assert (again.value.status, again.value.reason) == (409, "preview.decided")
    assert len(world.callbacks(exchange_id)) == 1


def test_declining_drops_the_evidence_unsealed(world: World) -> None:
    exchange_id, token = held(world)
    assert decide(world, token, approve=False) == "declined"
    exchange = world.exchange(exchange_id)
    assert (exchange.state, exchange.reason, exchange.evidence) == (State.REJECTED, "preview.declined", None)
    assert world.sealer.sealed == []
    assert world.events(exchange_id)[-2:] == [("preview_decided", "declined"), ("refused", "rejected")]
    assert [c.state for c in world.callbacks(exchange_id)] == ["pending"]


def test_an_undecided_preview_expires_when_looked_at_after_its_time(world: World) -> None:
    exchange_id, token = held(world)
    world.clock.advance(timedelta(minutes=29))
    with world.database.unit_of_work() as session:
        found = service.find(session, world.deps, token)
    assert found is not None and found.preview.state == "pending"
    world.clock.advance(timedelta(minutes=2))
    assert decide(world, token, approve=True) == "expired"
    exchange = world.exchange(exchange_id)
    assert (exchange.state, exchange.reason, exchange.evidence) == (State.EXPIRED, "preview.expired", None)
    assert world.sealer.sealed == []
    assert [c.state for c in world.callbacks(exchange_id)] == ["pending"]


def test_unknown_and_malformed_tokens_open_nothing(world: World) -> None:
    with world.database.unit_of_work() as session:
        assert service.find(session, world.deps, "A" * 43) is None
        assert service.find(session, world.deps, "../../etc/passwd") is None
    assert decide(world, "B" * 43, approve=True) == "not_found"


@pytest.mark.parametrize(
    ("citizen", "refusal"),
    [
        (lambda w: w.citizen(STRANGER), "citizen.not_subject"),
        (lambda w: w.citizen(assurance="low"), "citizen.assurance_too_low"),
        (lambda w: w.citizen(age=MAX_AGE + timedelta(seconds=1)), "citizen.reauthenticate"),
    ],
)
def test_only_the_subject_recently_signed_in_at_the_types_level_decides(
    world: World, citizen: Callable[[World], Citizen], refusal: str
) -> None:
    exchange_id, token = held(world)
    assert decide(world, token, approve=True, citizen=citizen(world)) == refusal
    assert world.exchange(exchange_id).state == State.AWAITING_PREVIEW and world.sealer.sealed == []
    # A stranger's or a too-low attempt is recorded; an old sign-in only asks for a new one.
    recorded = [e for e in world.events(exchange_id) if e[0] == "preview_refused"]
    assert len(recorded) == (0 if refusal == "citizen.reauthenticate" else 1)
    assert decide(world, token, approve=True) == "approved"


def test_the_name_and_the_idnr_are_both_the_citizens(world: World) -> None:
    """A request by IDNr and one by name are the same citizen's, whose sign-in states both."""
    by_idnr = world.request(preview=True, subject={"idnr": ERIKA_IDNR, **ERIKA}).exchange.id
    signed_in = world.citizen({"idnr": ERIKA_IDNR, **ERIKA})
    assert decide(world, world.previews.token(by_idnr), True, signed_in) == "approved"
    by_name = world.request(preview=True).exchange.id
    name_only = world.citizen()
    assert decide(world, world.previews.token(by_name), True, name_only) == "approved"
    by_idnr_again = world.request(preview=True, subject={"idnr": ERIKA_IDNR, **ERIKA}).exchange.id
    assert decide(world, world.previews.token(by_idnr_again), True, name_only) == "citizen.not_subject"


NAMESAKES_IDNR = "70403624094"  # another valid IDNr: a namesake of Erika's, same names and birth date


def test_a_namesake_neither_sees_nor_decides_evidence_asked_by_name(world: World) -> None:
    """Asked by name alone, the evidence that comes back states whose it is: the IDNr."""
    world.answer = erika_evidence_stating(NAMESAKES_IDNR)
    exchange_id = world.request(preview=True).exchange.id
    token = world.previews.token(exchange_id)
    erika = world.citizen({"idnr": ERIKA_IDNR, **ERIKA})
    assert decide(world, token, approve=True, citizen=erika) == "citizen.not_subject"
    assert world.exchange(exchange_id).state == State.AWAITING_PREVIEW
    # The one whose IDNr the evidence states decides.
    namesake = world.citizen({"idnr": NAMESAKES_IDNR, **ERIKA})
    assert decide(world, token, approve=True, citizen=namesake) == "approved"


def test_repeated_refusals_are_logged_once_per_reason(world: World) -> None:
    exchange_id, token = held(world)
    for _ in range(5):
        assert decide(world, token, approve=True, citizen=world.citizen(STRANGER)) == "citizen.not_subject"
    for _ in range(3):
        assert decide(world, token, approve=True, citizen=world.citizen(assurance="low")) == "citizen.assurance_too_low"
    assert [e for e in world.events(exchange_id) if e[0] == "preview_refused"] == [("preview_refused", None)] * 2
