"""Layer 1, files: opening regular files safely, atomic writes, digests of files and folders."""
