"""Layer 5, ledgers: a ledger at a location, local or over HTTP, with one surface."""
