"""Layer 7, a face: the `modelchain` command (parsing, rendering, exit codes)."""
