"""The `baton` command: one module per command group (thin: parse, call the client or the
library that does the work, print), the helpers they share in `_shared`, and every failure worded
as one line in `errors`."""

from orchestrator.cli._shared import fail, state_machine_name
from orchestrator.cli.main import main

__all__ = ["fail", "main", "state_machine_name"]
