"""XML intake throughput: ``python -m bench.xml [--seconds S]``.

For a ~2 KB and a ~200 KB evidence document (generated for the test schema
``tests/assets/xml/schemas/evidence.xsd``) it measures validations per second of

- bare lxml: ``etree.fromstring`` with the default parser + ``XMLSchema.validate``,
- xmlschema: lxml parse + ``xmlschema.XMLSchema10.is_valid`` (the pure-Python engine),
- the broker intake: ``parse_xml`` + ``SchemaCatalogue.validate``,

and prints intake/bare for the 2 KB document (target >= 0.80). It checks that the generated
documents are valid, but asserts nothing about speed, so it runs on any machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import xmlschema
from lxml import etree

from broker.xml.catalogue import SchemaCatalogue
from broker.xml.hardened import parse_xml

SCHEMAS = Path(__file__).resolve().parents[1] / "tests" / "assets" / "xml" / "schemas"
NS = "urn:test:broker:evidence"


def evidence(target_bytes: int) -> bytes:
    """A valid evidence document of roughly ``target_bytes``."""
    head = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ev:Evidence xmlns:ev="{NS}" version="1.0">\n'
        "  <ev:Header><ev:Id>0b7b3f63-2f8c-4a0e-9d54-6c1f2e3a4b5c</ev:Id>"
        "<ev:Issued>2024-05-01T10:00:00Z</ev:Issued><ev:Authority>Amt Crivitz</ev:Authority>"
        "<ev:Jurisdiction>130765508</ev:Jurisdiction></ev:Header>\n"
        "  <ev:Subject><ev:FamilyName>Mustermann</ev:FamilyName><ev:GivenName>Erika</ev:GivenName>"
        "<ev:BirthDate>1964-08-12</ev:BirthDate><ev:BirthPlace>Schwerin</ev:BirthPlace></ev:Subject>\n"
    )
    tail = "</ev:Evidence>\n"
    entries: list[str] = []
    size = len(head) + len(tail)
    while size < target_bytes or not entries:
        seq = len(entries) + 1
        entry = (
            f'  <ev:Entry kind="{"main" if seq % 3 else "secondary"}" seq="{seq}">'
            f"<ev:Street>Schlossstraße</ev:Street><ev:HouseNumber>{seq}</ev:HouseNumber>"
            "<ev:PostalCode>19053</ev:PostalCode><ev:Municipality>Schwerin</ev:Municipality>"
            f"<ev:Ars>130040000000</ev:Ars><ev:From>{1990 + seq % 30}-01-01</ev:From>"
            f"<ev:Until>{1991 + seq % 30}-12-31</ev:Until></ev:Entry>\n"
        )
        entries.append(entry)
        size += len(entry.encode())
    return (head + "".join(entries) + tail).encode()


def rates(work: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Calls per second of each callable: batches of ~50 ms, interleaved so that drifting
    machine load hits all of them alike; the best batch of each counts."""
    batch: dict[str, int] = {}
    for name, fn in work.items():
        start = time.perf_counter()
        fn()
        batch[name] = max(1, int(0.05 / max(time.perf_counter() - start, 1e-7)))
    best = dict.fromkeys(work, 0.0)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for name, fn in work.items():
            start = time.perf_counter()
            for _ in range(batch[name]):
                fn()
            best[name] = max(best[name], batch[name] / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per document size")
    args = parser.parse_args()

    bare_schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "evidence.xsd")))
    python_schema = xmlschema.XMLSchema10(str(SCHEMAS / "evidence.xsd"), allow="local", defuse="always")
    catalogue = SchemaCatalogue([SCHEMAS])

    ratio = None
    for label, target in (("2 KB", 2_000), ("200 KB", 200_000)):
        data = evidence(target)
        root = parse_xml(data)
        catalogue.validate(root)
        assert bare_schema.validate(etree.fromstring(data)) and python_schema.is_valid(root)

        def bare(data: bytes = data) -> None:
            if not bare_schema.validate(etree.fromstring(data)):
                raise AssertionError("invalid")

        def pure_python(data: bytes = data) -> None:
            if not python_schema.is_valid(etree.fromstring(data)):
                raise AssertionError("invalid")

        def intake(data: bytes = data) -> None:
            catalogue.validate(parse_xml(data))

        figures = rates({"bare": bare, "xmlschema": pure_python, "intake": intake}, args.seconds)
        print(f"{label} document ({len(data):,} bytes, {len(root):,} children of the root):")
        for name in ("bare", "xmlschema", "intake"):
            print(f"  {name:<10} {figures[name]:>10,.0f} validations/s")
        print(f"  intake/bare {figures['intake'] / figures['bare']:.2f}")
        if ratio is None:
            ratio = figures["intake"] / figures["bare"]
    print(f"intake/bare for the 2 KB document: {ratio:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
