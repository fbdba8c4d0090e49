"""/v1/admin/rollout: the rollout matrix (admin role), as ``broker rollout status`` prints it."""

from __future__ import annotations

from fastapi import APIRouter

from broker.deps import Admin, ClockDep, Db
from broker.problems import problem_responses
from broker.rollout import service
from broker.rollout.schemas import RolloutOut

router = APIRouter(prefix="/v1/admin/rollout", tags=["rollout"])


@router.get("", response_model=RolloutOut, responses=problem_responses(401, 403))
def get_rollout(_: Admin, db: Db, clock: ClockDep) -> RolloutOut:
    """Every office of the registry × every evidence type: routed or not, to which authority and
    binding, its latest passed conformance run, last delivery, and the last 24 hours' exchanges,
    errors and p95 duration. Offices with gaps come first; ``gaps`` names each."""
    with db.read() as session:
        return service.matrix(session, clock.now())
