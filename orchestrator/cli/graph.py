"""`baton graph FILE [--format mermaid|dot]`: print a definition as a diagram, for docs."""

from __future__ import annotations

import click

from orchestrator.cli._shared import load_machine
from orchestrator.graph import to_dot, to_mermaid


@click.command()
@click.argument("file")
@click.option("--format", "format_", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="Mermaid flowchart text or Graphviz DOT.")
def graph(file: str, format_: str) -> None:
    """Print the definition FILE (JSON or YAML, validated first) as Mermaid or DOT."""
    machine = load_machine(file)
    click.echo(to_mermaid(machine) if format_ == "mermaid" else to_dot(machine), nl=False)
