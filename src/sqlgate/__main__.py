"""``python -m sqlgate`` runs the command line."""

from sqlgate.cli import main

main()
