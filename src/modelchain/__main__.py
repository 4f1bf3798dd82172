"""`python -m modelchain` is the `modelchain` command."""

from .cli import main

main()
