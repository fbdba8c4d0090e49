"""Structured JSON logs. Every line of a request carries its request id.

Personal data (names, birth dates, IDNr, addresses) is never passed to a logger: log
exchange ids, pseudonyms and reason codes instead.
"""

from __future__ import annotations

import logging
import sys

import structlog

# Libraries log what they handle: SQLAlchemy the statements with their parameters, signxml the
# canonicalised document it signs, httpx the addresses it calls. Whatever the broker's own level,
# they speak only at WARNING and above, so a debug session never writes personal data.
LIBRARY_LEVEL = logging.WARNING


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=LIBRARY_LEVEL, force=True)
    for name in list(logging.root.manager.loggerDict):
        if not name.startswith(("broker", "uvicorn")):  # uvicorn's level is capped where it is started
            logging.getLogger(name).setLevel(logging.NOTSET)  # inherit the root's WARNING
    # uvicorn's own access log would print raw request lines; the broker writes its own.
    logging.getLogger("uvicorn.access").disabled = True
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
