"""Layer 2, claims: keys, the registrant's signed claim and provenance, model-signing bundles."""
