"""Layer 4, checks: judgements over a ledger's contents (does a model match its registration)."""
