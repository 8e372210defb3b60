"""`python -m orchestrator.cli`: the `baton` command without its installed script."""

from orchestrator.cli.main import main

main()
