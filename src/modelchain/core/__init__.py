"""Layer 0, pure: formats, hashes and rules over bytes and values; no I/O, no imports from above."""
