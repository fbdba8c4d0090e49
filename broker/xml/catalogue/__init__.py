"""The schema catalogue: local XSDs indexed by namespace, compiled once, never the network.

Loading a catalogue runs through the private modules in order, each with its own reason to
change: ``_index`` scans the directories and reads what every file declares (namespaces,
imports, XSD 1.1 constructs, shadowing), ``_resolve`` maps every location a schema names to a
local document and serves only those to the compilers, ``_compile`` builds one schema per
component of linked namespaces with lxml or xmlschema, and ``_validate`` turns either engine's
errors into :class:`~broker.xml.hardened.XmlIntakeError`. ``_import`` brings new schema sets in.
"""

from broker.xml.catalogue._catalogue import SchemaCatalogue, SchemaEntry
from broker.xml.catalogue._import import import_schemas
from broker.xml.catalogue._index import CatalogueError
from broker.xml.catalogue._validate import Validator

__all__ = ["CatalogueError", "SchemaCatalogue", "SchemaEntry", "Validator", "import_schemas"]
