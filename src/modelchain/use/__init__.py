"""Layer 6, use: scanning, verify-then-load, the seed demo and trust-state commands."""
