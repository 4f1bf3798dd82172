"""Layer 3, the log: blocks, the stores that keep them, and the verifier's trust state (`home`)."""
