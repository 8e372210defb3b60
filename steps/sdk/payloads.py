"""The step side of the claim check (docs/payloads.md): a command's payload references resolved
before its handler runs, and a result's large values offloaded before it is published. Both run
the store's synchronous I/O on a worker thread, so a 20 MiB read never holds the service's loop.
`steps.service.StepService` calls them; a handler only ever sees values."""

from __future__ import annotations

import asyncio

from pydantic_core import to_json

from kafka_io.payloads import PayloadStore, PayloadStoreError
from schemas.payloads import PAYLOAD_MISSING, PAYLOAD_UNAVAILABLE, PayloadError, contains_reference
from schemas.steps import StepCommand, StepResult


async def resolve_command(store: PayloadStore | None, command: StepCommand, service: str) -> StepCommand:
    """The command with its parameters' references resolved (PayloadError, PayloadStoreError:
    an object is missing, corrupt, or the store does not answer)."""
    if not contains_reference(command.parameters):
        return command
    if store is None:
        raise PayloadError(PAYLOAD_MISSING, f"the command of task {command.task_id} references payloads, but the "
                           f"{service} service has no payload store: set BATON_PAYLOAD_STORE")
    parameters = await asyncio.to_thread(store.hydrate, command.parameters, command.execution_id)
    return command.model_copy(update={"parameters": parameters})


def failed_for(command: StepCommand, exc: PayloadError | PayloadStoreError) -> StepResult:
    """The task's failure when its command's references cannot be resolved."""
    error = exc.error if isinstance(exc, PayloadError) else PAYLOAD_UNAVAILABLE
    return StepResult(execution_id=command.execution_id, kind="failed", task_id=command.task_id, error=error,
                      cause=str(exc), result_key=command.result_key)


async def offload_result(store: PayloadStore | None, result: StepResult) -> StepResult:
    """A success whose output is over the threshold, its large values stored and referenced; one
    over BATON_MAX_OFFLOADED_PAYLOAD fails (States.DataLimitExceeded), as does one the store does
    not take (Baton.Payload.Unavailable)."""
    if store is None or result.kind != "succeeded":
        return result
    try:
        if len(to_json(result.output)) <= store.threshold:
            return result
        output = await asyncio.to_thread(store.offload, result.output, result.execution_id)
    except (PayloadError, PayloadStoreError) as exc:
        error = exc.error if isinstance(exc, PayloadError) else PAYLOAD_UNAVAILABLE
        return result.model_copy(update={"kind": "failed", "output": None, "error": error, "cause": str(exc)})
    except Exception:  # an output that is not JSON: the service's encoding says so
        return result
    return result.model_copy(update={"output": output})
