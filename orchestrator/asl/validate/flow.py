"""Transitions (ASL spec, "Transitions"): each state goes on with "Next" or ends with "End": true,
every target is a state of the same scope, some state ends, and every state is reachable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.asl.errors import Problem
from orchestrator.asl.validate.problems import child, listing


@dataclass
class Scope:
    """One `States` object: the top-level machine, a Parallel branch or a Map processor.

    Transitions cannot leave a scope (ASL spec, "Parallel State" / "Map State"), so targets and
    reachability are checked per scope.
    """

    path: str  # the path of the `States` object
    states: dict[str, Any]
    edges: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # state -> [(target, path)]

    def add_edge(self, source: str, target: Any, path: str) -> None:
        if isinstance(target, str):
            self.edges.setdefault(source, []).append((target, path))


def check_next_or_end(scope: Scope, name: str, state: dict[str, Any], path: str, kind: str) -> list[Problem]:
    """Exactly one of "Next" (a state of this scope) or "End": true; records the edge."""
    problems: list[Problem] = []
    end = state.get("End", False)
    if "End" in state and not isinstance(end, bool):
        problems.append(Problem(child(path, "End"), "'End' must be true or false"))
        end = False
    if "Next" in state:
        next_path = child(path, "Next")
        if not isinstance(state["Next"], str):
            problems.append(Problem(next_path, "'Next' must be a string naming a state"))
        if end is True:
            problems.append(Problem(path, "a state may have 'Next' or \"End\": true, not both"))
        scope.add_edge(name, state["Next"], next_path)
    elif end is not True:
        problems.append(Problem(path, f"a {kind} state needs 'Next' (the state to run next) or \"End\": true"))
    return problems


def check_graph(scope: Scope, start_at: str | None, start_path: str) -> list[Problem]:
    """Transition targets exist in the scope; some state ends; every state is reachable."""
    problems: list[Problem] = []
    if start_at is not None and start_at not in scope.states:
        problems.append(Problem(start_path, (
            f"'StartAt' names {start_at!r}, which is not a state of this scope; states: {listing(scope.states)}"
        )))
    for targets in scope.edges.values():
        for target, path in targets:
            if target not in scope.states:
                problems.append(Problem(path, (
                    f"no state named {target!r} in this scope "
                    "(a transition cannot enter or leave a Parallel branch or Map processor)"
                )))
    if not any(_is_terminal(state) for state in scope.states.values()):
        # AWS reports only this (MISSING_END_STATE), not the reachability of each state.
        problems.append(Problem(scope.path, (
            "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state"
        )))
        return problems
    if start_at is None:
        return problems  # reachability is meaningless without a start
    # From a StartAt naming no state nothing is reachable; AWS reports each state then too.
    reached = {start_at} & scope.states.keys()
    pending = list(reached)
    while pending:
        for target, _ in scope.edges.get(pending.pop(), []):
            if target in scope.states and target not in reached:
                reached.add(target)
                pending.append(target)
    for name in scope.states:
        if name not in reached:
            problems.append(Problem(child(scope.path, name), (
                f"state {name!r} is not reachable from 'StartAt' {start_at!r}; remove it or transition to it"
            )))
    return problems


def _is_terminal(state: Any) -> bool:
    return isinstance(state, dict) and (state.get("Type") in ("Succeed", "Fail") or state.get("End") is True)

