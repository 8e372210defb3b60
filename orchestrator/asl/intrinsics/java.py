"""What Step Functions' JVM shows through: Java renderings, Jackson's JSON text, Java's hashCode and
HashSet order (States.ArrayUnique), java.util.Random (a seeded States.MathRandom), UTF-16 lengths.

Recorded executions on real AWS (LocalStack's snapshots and the tiny-asl-machine AWS snapshots)
establish each of these behaviours.
"""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal
from typing import Any

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def java_length(text: str) -> int:
    """String.length() in Java: UTF-16 code units, so characters outside the BMP count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def java_double(value: float) -> str:
    """Double.toString: shortest digits, plain between 1e-3 and 1e7, else `d.dddE<n>`."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    minus = "-" if sign else ""
    if 1e-3 <= abs(value) < 1e7:
        plain = format(Decimal(repr(abs(value))).normalize(), "f")
        return minus + (plain if "." in plain else plain + ".0")
    return f"{minus}{digits[0]}.{digits[1:] or '0'}E{len(digits) + exponent - 1}"


def java_str(value: Any) -> str:
    """String.valueOf of the Java object Step Functions holds for a JSON value (Map.toString etc.)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(java_str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={java_str(item)}" for key, item in value.items()) + "}"
    return str(value)


# Jackson escapes quotes, backslashes and control characters (\uXXXX in upper-case hex).
_JSON_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\f"): "\\f",
    ord("\r"): "\\r",
}


def json_text(value: Any) -> str:
    """Compact JSON text as Step Functions (Jackson) writes it: no spaces, doubles as Java prints them."""
    if isinstance(value, str):
        return '"' + value.translate(_JSON_ESCAPES) + '"'
    if value is None or isinstance(value, (bool, int, float)):
        return java_double(value) if isinstance(value, float) else json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(map(json_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_text(str(k))}:{json_text(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


# --- Java collections: equality, hashCode and HashSet order (States.ArrayUnique) --------------


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def java_hash(value: Any) -> int:
    """hashCode() of the Java object for a JSON value (Integer/Long, Double, String, List, Map)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1231 if value else 1237
    if isinstance(value, int):
        if INT32_MIN <= value <= INT32_MAX:
            return value
        bits = value & 0xFFFFFFFFFFFFFFFF  # Long.hashCode
        return _int32(bits ^ (bits >> 32))
    if isinstance(value, float):
        (bits,) = struct.unpack(">Q", struct.pack(">d", value))
        return _int32(bits ^ (bits >> 32))
    if isinstance(value, str):
        h = 0
        for unit in struct.unpack(f"<{len(value.encode('utf-16-le')) // 2}H", value.encode("utf-16-le")):
            h = (31 * h + unit) & 0xFFFFFFFF
        return _int32(h)
    if isinstance(value, list):
        h = 1
        for item in value:
            h = (31 * h + java_hash(item)) & 0xFFFFFFFF
        return _int32(h)
    if isinstance(value, dict):
        return _int32(sum(java_hash(str(k)) ^ java_hash(v) for k, v in value.items()))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def java_key(value: Any) -> Any:
    """A hashable key equal for two JSON values exactly when their Java objects are equals()."""
    if isinstance(value, list):
        return ("list", tuple(map(java_key, value)))
    if isinstance(value, dict):
        return ("map", frozenset((str(k), java_key(v)) for k, v in value.items()))
    if isinstance(value, float):
        return ("double", struct.pack(">d", value))
    return (type(value).__name__, value)  # bool stays apart from int, 1 apart from 1.0


def hash_set_order(items: list[Any]) -> list[Any]:
    """The iteration order of `new ArrayList<>(new HashSet<>(items))` on a JVM (Java 8 to 18)."""
    capacity = 1
    while capacity < max(int(len(items) / 0.75) + 1, 16):
        capacity *= 2
    unique: dict[Any, Any] = {}
    for item in items:
        unique.setdefault(java_key(item), item)

    def bucket(item: Any) -> int:
        h = java_hash(item) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(unique.values(), key=bucket)  # sorted() is stable: insertion order within a bucket


def java_random_int(seed: int, bound: int) -> int:
    """`new java.util.Random(seed).nextInt(bound)`, bit for bit."""
    multiplier, mask = 0x5DEECE66D, (1 << 48) - 1
    state = (seed ^ multiplier) & mask

    def next31() -> int:
        nonlocal state
        state = (state * multiplier + 0xB) & mask
        return state >> 17

    if bound & -bound == bound:
        return (bound * next31()) >> 31
    while True:
        bits = next31()
        value = bits % bound
        if bits - value + (bound - 1) <= INT32_MAX:  # Java rejects draws whose int sum overflows
            return value
