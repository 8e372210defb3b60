"""`evaluate`: run an intrinsic against the state's data, the context object and the variables."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.intrinsics.functions import FUNCTIONS
from orchestrator.asl.intrinsics.parser import parse
from orchestrator.asl.intrinsics.syntax import Call, Literal, Node, Path
from orchestrator.asl.intrinsics.templates import literal_template
from orchestrator.asl.intrinsics.values import FAILURE_ERROR, Env, Fault, InvalidArguments


def evaluate(
    expr: str,
    data: Any,
    *,
    context: Any,
    variables: Mapping[str, Any] | None,
    rng: random.Random,
    new_uuid: Callable[[], str],
) -> Any:
    """Evaluate the intrinsic `expr` against the state's data, the context object and variables.

    Raises IntrinsicSyntaxError when `expr` does not parse, and StatesError(States.Runtime) with
    the cause Step Functions gives when an argument path matches nothing or a function refuses
    its arguments (the caller adds the "An error occurred while executing the state" prefix).
    """
    env = Env(expr, data, context, variables, rng, new_uuid)
    try:
        return evaluate_call(parse(expr), env)
    except Fault as fault:
        raise errors.StatesError(
            FAILURE_ERROR,
            f"There was an error while evaluating the intrinsic function: {expr}. {fault.message}",
        ) from None


def evaluate_node(node: Node, env: Env) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return env.read(node.path)
    return evaluate_call(node, env)


def evaluate_call(call: Call, env: Env) -> Any:
    spec = FUNCTIONS[call.name]
    if not spec.accepts(len(call.args)):
        raise Fault(f"Invalid arguments in {call.name}{spec.arity_detail}")
    args = [evaluate_node(arg, env) for arg in call.args]
    first = call.args[0] if call.args else None
    if spec.template_first and isinstance(first, Literal) and isinstance(first.value, str):
        args[0] = literal_template(first)  # remembers which braces the literal escaped
    try:
        return spec.impl(args, env)
    except InvalidArguments:
        raise Fault(f"Invalid arguments in {call.name}") from None
