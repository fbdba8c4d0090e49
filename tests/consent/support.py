"""The citizen's decision on a consent requested from a real broker process, made in process.

Until a test signs in through the citizen pages, it decides as the signed-in citizen would: on
the broker's own database, with the pseudonyms and the consent signer of the broker's own key
directory, through the same service call the citizen pages make.
"""

from __future__ import annotations

from datetime import UTC, datetime

from broker.consent import service
from broker.consent.artefact import KeyConsentSigner
from broker.db.models import Consent
from broker.db.session import Database, make_engine
from broker.exchange.schemas import SubjectIn
from broker.keys.pseudonym import Pseudonymiser
from broker.keys.store import KeyStore
from tests.conftest import LiveBroker
from tests.specimen import ERIKA


def citizen_pseudonyms(broker: LiveBroker, *subjects: dict[str, str]) -> frozenset[str]:
    """The pseudonyms the broker gives these identities of one citizen (default: Erika by name)."""
    pseudonyms = Pseudonymiser(KeyStore(broker.keys_dir).pseudonym_secret)
    return frozenset(pseudonyms.of(SubjectIn.model_validate(s).to_subject()) for s in subjects or (ERIKA,))


def decide_as_citizen(
    broker: LiveBroker, consent_id: str, grant: bool = True, subject: dict[str, str] = ERIKA
) -> Consent:
    database = Database(make_engine(broker.database_url))
    try:
        with database.unit_of_work() as session:
            return service.decide(
                session,
                consent_id,
                citizen_pseudonyms(broker, subject),
                grant,
                datetime.now(UTC),
                KeyConsentSigner(KeyStore(broker.keys_dir)),
            )
    finally:
        database.dispose()


def revoke_as_citizen(broker: LiveBroker, consent_id: str, subject: dict[str, str] = ERIKA) -> Consent:
    database = Database(make_engine(broker.database_url))
    try:
        with database.unit_of_work() as session:
            return service.revoke_by_citizen(
                session, consent_id, citizen_pseudonyms(broker, subject), datetime.now(UTC)
            )
    finally:
        database.dispose()
