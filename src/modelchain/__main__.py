"""`python -m modelchain` is the `modelchain` command."""

from modelchain.cli.commands import main

main()
