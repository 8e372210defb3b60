"""`baton stream EXECUTION`: an execution's streamed LLM tokens, printed as they arrive.

The execution is looked up on the read side first (the read model, caught up from the history and
events topics, as `baton describe` does), so an unknown id or name fails at once with one line
instead of waiting for chunks that will never come; an execution that has already ended is
replayed from the stream topic and, if it streamed nothing there, says so after a few seconds; one
followed while it runs is checked every few seconds, and its end without a final chunk stops it too.
The chunks are read and printed by `orchestrator.cli.llm.follow_and_print`.
"""

from __future__ import annotations

import click

from orchestrator.api.readmodel import TERMINAL_STATUSES
from orchestrator.cli._shared import kafka_settings
from orchestrator.cli.control import caught_up, kafka_options, read_model_options, resolve
from orchestrator.cli.llm import follow_and_print

ENDED_IDLE_SECONDS = 5.0  # an ended execution publishes nothing more: what is not there by then never comes


@click.command()
@click.argument("execution")
@click.option("--since", "since_seconds", type=click.FloatRange(min=0), default=3600, show_default=True,
              help="Include chunks published up to this many seconds ago (attach late, miss nothing).")
@click.option("--all-tasks", is_flag=True,
              help="Keep following after the first final chunk (several streamed steps); stop after --timeout idle.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help="Give up after this many seconds without a chunk (default: wait while it runs; 5 s once "
                   "it has ended).")
@click.option("--json", "as_json", is_flag=True, help="Print each chunk as a JSON line instead of the text.")
@read_model_options
@kafka_options
def stream(execution: str, since_seconds: float, all_tasks: bool, timeout: float | None, as_json: bool,
           db: str | None, catch_up_timeout: float, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Print the tokens an execution's streamed LLM steps publish (by id, or by name when unique),
    in order, until its final chunk."""
    settings = kafka_settings(bootstrap, topic_prefix)
    model = caught_up(db, settings, catch_up_timeout)
    view = resolve(model, execution, settings)
    ended = view.status in TERMINAL_STATUSES
    idle = timeout if timeout is not None else (ENDED_IDLE_SECONDS if ended else 30.0 if all_tasks else None)
    silent_end = (f"{view.execution_id} ended ({view.status}) without a streamed answer in the last "
                  f"{since_seconds:g} s (`baton history {view.name}` shows its output; --since reaches further back)"
                  if ended else
                  f"{view.execution_id} ended without a streamed answer (`baton describe {view.name}` shows how)")

    async def has_ended() -> bool:  # a running execution that ends without streaming must not be waited for
        await model.catch_up(settings, catch_up_timeout)
        now = model.describe(view.execution_id)
        return now is None or now.status in TERMINAL_STATUSES

    follow_and_print(settings, view.execution_id, since_seconds=since_seconds, all_tasks=all_tasks,
                     idle_timeout=idle, as_json=as_json, silent_end=silent_end if timeout is None else None,
                     ended=None if ended or all_tasks else has_ended, ended_idle=ENDED_IDLE_SECONDS)
