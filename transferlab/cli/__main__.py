"""`python -m transferlab.cli`: the same as the `transferlab` command."""
from transferlab.cli import app

app()
