from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from adapters.registers.models import RegisterBase
from broker.db.models import Base
from broker.db.session import make_engine

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        # One history for both: the broker's tables and the demo registers the in-process
        # reference adapters read.
        target_metadata=[Base.metadata, RegisterBase.metadata],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        run(conn)
