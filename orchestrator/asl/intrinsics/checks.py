"""`check`: the static checks a definition's intrinsic must pass before any execution runs it."""

from __future__ import annotations

from orchestrator.asl.intrinsics.functions import FUNCTIONS
from orchestrator.asl.intrinsics.parser import parse
from orchestrator.asl.intrinsics.syntax import Call, IntrinsicSyntaxError, Literal, count_calls

MAX_FUNCTIONS_PER_FIELD = 10  # developer guide: "You can nest up to 10 intrinsic functions"


def check(expr: str) -> None:
    """Raise IntrinsicSyntaxError unless `expr` is a well-formed call that can succeed.

    Refuses bad syntax, unknown function names, invalid escapes, invalid path arguments, more than
    10 functions in one expression, wrong argument counts, literal arguments of the wrong type
    and literal values no call can accept (e.g. an unknown hash algorithm or a Format template
    whose placeholders do not match its arguments).
    """
    call = parse(expr)
    check_call(call, expr)
    count = count_calls(call)
    if count > MAX_FUNCTIONS_PER_FIELD:
        raise IntrinsicSyntaxError(
            f"{count} intrinsic functions in one expression; at most {MAX_FUNCTIONS_PER_FIELD} are allowed"
        )


def check_call(call: Call, expr: str) -> None:
    spec = FUNCTIONS[call.name]
    if not spec.accepts(len(call.args)):
        raise IntrinsicSyntaxError(
            f"{call.name} takes {spec.arity_text()}, but {len(call.args)} were given in {expr!r}"
        )
    for index, arg in enumerate(call.args):
        if isinstance(arg, Call):
            check_call(arg, expr)
        elif isinstance(arg, Literal):
            kind = spec.kind(index)
            if type(arg.value) not in kind.literal_types:
                raise IntrinsicSyntaxError(
                    f"argument {index + 1} of {call.name} must be {kind.description}, not the literal {arg.source}"
                )
    if spec.static_check:
        spec.static_check(call)
