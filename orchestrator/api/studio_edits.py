"""What the studio checks and changes in a definition before it is saved (pure: no I/O).

The studio edits an LLM Task's Parameters (Model, Provider, PromptRef, Temperature, MaxTokens) in
the browser and sends the whole edited definition. Besides the ASL validation every deploy runs,
each `baton:llm` Task's Parameters are checked as the LLM step will parse them (`steps.llm.task`),
so a Temperature of 5 or a Prompt next to a PromptRef is refused when saving, not when the new
version first runs. An edited prompt text is published as a new prompt version and the state's
PromptRef is pointed at it (`with_prompt_ref`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from orchestrator.asl.budget import TASK_PARAMETER
from steps.llm.errors import InvalidParameters
from steps.llm.task import parse_task

# A dynamic (".$") field is only known when the state runs: the check sees a placeholder of the
# right kind in its place, so the static fields next to it are still checked.
_TEXT_FIELDS = {"Prompt", "PromptRef", "System", "SystemRef", "Model", "Provider"}
_PLACEHOLDER_MESSAGES = [{"Role": "user", "Content": "(from the state input)"}]


def iter_states(definition: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any], str]]:
    """Every state of a definition, nested ones included: (name, state object, JSON path)."""
    states = definition.get("States") if isinstance(definition, dict) else None
    if not isinstance(states, dict):
        return
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        where = f"{path}.States.{name}"
        yield name, state, where
        for index, branch in enumerate(state.get("Branches") or []):
            yield from iter_states(branch, f"{where}.Branches[{index}]")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_states(state[key], f"{where}.{key}")


def is_llm_task(state: dict[str, Any]) -> bool:
    resource = state.get("Resource")
    return state.get("Type") == "Task" and isinstance(resource, str) and resource.startswith("baton:llm")


def find_state(definition: Any, name: str) -> tuple[dict[str, Any], str] | None:
    """The state named `name` anywhere in the definition (ASL names are unique machine-wide)."""
    return next(((state, path) for found, state, path in iter_states(definition) if found == name), None)


def llm_problems(definition: Any) -> list[dict[str, str]]:
    """Each `baton:llm` Task whose Parameters the LLM step would refuse: [{path, message}]."""
    problems: list[dict[str, str]] = []
    for _, state, path in iter_states(definition):
        parameters = state.get("Parameters", state.get("Arguments"))
        if not is_llm_task(state) or not isinstance(parameters, dict):
            continue  # no Parameters, or a JSONata string: known only when the state runs
        static: dict[str, Any] = {}
        for key, value in parameters.items():
            if key.split(".$")[0] == TASK_PARAMETER:
                continue  # the Task's budget: the orchestrator's, checked by validate, never sent to the step
            if key.endswith(".$"):
                field = key[:-2]
                static[field] = ("(from the state input)" if field in _TEXT_FIELDS
                                 else _PLACEHOLDER_MESSAGES if field == "Messages" else None)
            elif not (isinstance(value, str) and value.startswith("{%") and value.endswith("%}")):
                static[key] = value  # a JSONata expression too is known only when it runs
        try:
            parse_task(static)
        except InvalidParameters as exc:
            problems.append({"path": f"{path}.Parameters", "message": exc.cause})
    return problems


def prompt_ref_of(definition: Any, state_name: str) -> tuple[str | None, str | None]:
    """(the static PromptRef of an LLM state, None) or (None, why its prompt cannot be edited)."""
    found = find_state(definition, state_name)
    if found is None:
        return None, f"no state named {state_name!r} in the definition"
    state, _ = found
    parameters = state.get("Parameters")
    if not is_llm_task(state) or not isinstance(parameters, dict):
        return None, f"state {state_name!r} is not a baton:llm Task with Parameters"
    ref = parameters.get("PromptRef")
    if not isinstance(ref, str):
        return None, f"state {state_name!r} names no static PromptRef (a new prompt version needs one to follow)"
    return ref, None


def with_prompt_ref(definition: dict[str, Any], state_name: str, ref: str) -> dict[str, Any]:
    """A copy of the definition whose state `state_name` uses PromptRef `ref`."""
    changed = copy.deepcopy(definition)
    found = find_state(changed, state_name)
    assert found is not None, state_name  # checked by prompt_ref_of first
    found[0]["Parameters"]["PromptRef"] = ref
    return changed


def llm_states(definition: Any) -> dict[str, dict[str, Any]]:
    """The page's view of each LLM Task: its static Parameters and whether its prompt is editable."""
    return {name: {"path": path, "parameters": state.get("Parameters"),
                   "prompt_editable": prompt_ref_of(definition, name)[0] is not None}
            for name, state, path in iter_states(definition) if is_llm_task(state)}
