"""Layer 5, ledgers: a ledger at a location, local or over HTTP, with one surface.

`Ledger(location)` is a `LocalLedger` (a file or a database, written here) or a
`RemoteLedger` (a server, every answer proven); both kinds are imported here, so that
`Ledger` can choose between them whichever module of the package was imported first.
"""

from modelchain.ledgers.base import Ledger
from modelchain.ledgers.local import LocalLedger, Lookup
from modelchain.ledgers.remote import RemoteLedger

__all__ = ["Ledger", "LocalLedger", "Lookup", "RemoteLedger"]
