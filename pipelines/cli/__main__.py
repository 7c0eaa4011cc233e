"""`python -m pipelines.cli`: the tally command."""

from pipelines.cli import main

main()
