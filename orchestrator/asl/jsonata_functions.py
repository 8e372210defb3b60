"""The functions Step Functions adds to JSONata (developer guide, "Transforming data with
JSONata"): $partition, $range, $hash, $parse (pure), and $random, $uuid, $shuffle, $now, $millis,
which read the decision's seed, clock and ids so a decision stays a pure function of its event."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from jsonata import Functions, JException, Jsonata
from jsonata.utils import Utils


class _Native:
    """Adapts a Python callable to the library's function protocol (`call(input, args)`)."""

    def __init__(self, implementation: Callable[..., Any]) -> None:
        self._implementation = implementation

    def call(self, focus: Any, args: Any) -> Any:
        return self._implementation(*(args or ()))


def _function(implementation: Callable[..., Any], signature: str) -> Any:
    """A JSONata function value; the signature gives the library's argument checks (T0410)."""
    return Jsonata.JFunction(_Native(implementation), signature)


def _error(message: str) -> JException:
    """A JSONata dynamic error with our own message (D3137 renders its message verbatim)."""
    return JException("D3137", -1, message)


def _items(array: Any) -> list[Any]:
    return [array[index] for index in range(len(array))]


def _partition(array: Any, size: Any) -> Any:
    """`$partition(array, chunkSize)`: consecutive chunks, the last holding the remainder.

    The size is truncated towards zero; an empty array or a size below 1 gives undefined.
    """
    if array is None or size is None:
        return None
    items, chunk = _items(array), math.trunc(size)
    if not items or chunk < 1:
        return None
    return [items[start : start + chunk] for start in range(0, len(items), chunk)]


# Like JSONata's own range operator (D2014), refuse to allocate absurd sequences.
_RANGE_LIMIT: Final = 1_000_000


def _range(start: Any, end: Any, step: Any) -> Any:
    """`$range(start, end, step)`: start, start+step, ... up to end inclusive.

    Arguments are truncated towards zero. A zero step, or one pointing away from `end`, gives
    undefined; a single value comes back bare, not as a one-element array (recorded on AWS:
    `$range(1, 9, 9)` is `1`).
    """
    if start is None or end is None or step is None:
        return None
    first, last, delta = math.trunc(start), math.trunc(end), math.trunc(step)
    if delta == 0 or (delta > 0 and first > last) or (delta < 0 and first < last):
        return None
    count = (last - first) // delta + 1
    if count > _RANGE_LIMIT:
        raise _error(
            f"The size of the sequence allocated by $range must not exceed 1e6. Attempted to allocate {count}."
        )
    values = list(range(first, first + count * delta, delta))
    return values[0] if count == 1 else values


_HASH_ALGORITHMS: Final = {
    "MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
}


def _hash(value: Any, algorithm: Any) -> Any:
    """`$hash(data, algorithm)`: lowercase hex digest of the UTF-8 string; names are exact-case."""
    if value is None or algorithm is None:
        return None
    name = _HASH_ALGORITHMS.get(algorithm)
    if name is None:
        raise _error(f"Hash algorithm '{algorithm}' must be one of {', '.join(_HASH_ALGORITHMS)}")
    return hashlib.new(name, value.encode("utf-8")).hexdigest()


def _parse(text: Any) -> Any:
    """`$parse(jsonString)`: the JSON value of a string (AWS's replacement for `$eval`)."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise _error(f"Invalid JSON passed to $parse: {render(text)}") from None
    return Utils.NULL_VALUE if value is None else value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# java.util.Random's generator: $random(seed) is reproducible from the seed alone, and AWS is
# reported to draw seeded values from it ($random(42) = 0.7275636800328681).
_JAVA_MULTIPLIER: Final = 0x5DEECE66D
_JAVA_MASK: Final = (1 << 48) - 1


def _seeded_random(seed: Any) -> float:
    """`new java.util.Random(seed).nextDouble()` with the seed truncated to a long."""
    long_seed: int = max(-(2**63), min(math.trunc(seed), 2**63 - 1))
    state = (long_seed ^ _JAVA_MULTIPLIER) & _JAVA_MASK

    def next_bits(bits: int) -> int:
        nonlocal state
        state = (state * _JAVA_MULTIPLIER + 0xB) & _JAVA_MASK
        return state >> (48 - bits)

    return ((next_bits(26) << 27) + next_bits(27)) * 2.0**-53


PURE_FUNCTIONS: Final[dict[str, Any]] = {
    "partition": _function(_partition, "<an:a>"),
    "range": _function(_range, "<nnn:x>"),
    "hash": _function(_hash, "<ss:s>"),
    "parse": _function(_parse, "<s:x>"),
}


def impure_functions(
    states: Mapping[str, Any], rng: random.Random, new_uuid: Callable[[], str]
) -> dict[str, Any]:
    """Functions drawing on the injected sources: fresh for each evaluation."""

    def random_(seed: Any = None) -> float:
        return rng.random() if seed is None else _seeded_random(seed)

    def shuffle(array: Any) -> Any:
        if array is None:
            return None
        items = _items(array)
        rng.shuffle(items)
        return items

    def millis() -> int:
        entered = _entered_millis(states)
        if entered is None:
            raise _error("$now() and $millis() need $states.context.State.EnteredTime")
        return entered

    def now(picture: Any = None, zone: Any = None) -> Any:
        return Functions.datetime_from_millis(millis(), picture, zone)

    return {
        "random": _function(random_, "<n?:n>"),
        "uuid": _function(new_uuid, "<:s>"),
        "shuffle": _function(shuffle, "<a:a>"),
        "now": _function(now, "<s?s?:s>"),
        "millis": _function(millis, "<:n>"),
    }


def _entered_millis(states: Mapping[str, Any]) -> int | None:
    """The state's entered time (else the execution's start) in epoch milliseconds.

    `$now()` and `$millis()` read this instead of the clock, so replaying a decision gives the
    same values; on AWS they read the clock during the state, a few milliseconds later at most
    for a Pass or Choice, later for a Task's Output.
    """
    context = states.get("context")
    for section, key in (("State", "EnteredTime"), ("Execution", "StartTime")):
        part = context.get(section) if isinstance(context, Mapping) else None
        stamp = part.get(key) if isinstance(part, Mapping) else None
        if isinstance(stamp, str):
            try:
                moment = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            if moment.tzinfo is None:  # context times are UTC; never read the host's zone
                moment = moment.replace(tzinfo=timezone.utc)
            return round(moment.timestamp() * 1000)
    return None


def render(value: Any) -> str:
    """JSON.stringify-like rendering of a value inserted into an error message."""
    if value is Utils.NULL_VALUE:
        return "null"
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return "function" if Utils.is_function(value) else type(value).__name__
