"""URL-encoding of a request body and of query parameters ([https] "Applying URL-encoding on
request body").

With `Transform.RequestBodyEncoding: URL_ENCODED` the JSON RequestBody becomes form data: nested
objects as `key[sub]`, arrays as `RequestEncodingOptions.ArrayFormat` says:

    INDICES  (default)  array[0]=a&array[1]=b
    REPEAT              array=a&array=b
    COMMAS              array=a,b
    BRACKETS            array[]=a&array[]=b

Keys and values are percent-encoded as RFC 3986 unreserved-only, as Step Functions sends them
(`description=Monthly%20subscription&metadata%5Border_details%5D=monthly%20report%20data`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final, Literal
from urllib.parse import quote

ArrayFormat = Literal["INDICES", "REPEAT", "COMMAS", "BRACKETS"]
ARRAY_FORMATS: Final = ("INDICES", "REPEAT", "COMMAS", "BRACKETS")


def scalar_text(value: Any) -> str:
    """A JSON scalar as form text: strings as they are, true/false/null and numbers as in JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def flatten(value: dict[str, Any], array_format: ArrayFormat = "INDICES") -> list[tuple[str, str]]:
    """The (key, value) pairs of a JSON object in form notation, before percent-encoding."""
    return [(key, ",".join(parts)) for key, parts in _pairs(value, array_format)]


def encode_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    """`k=v&k=v`, keys and values percent-encoded."""
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)


def url_encode(value: dict[str, Any], array_format: ArrayFormat = "INDICES") -> str:
    """A JSON object as `application/x-www-form-urlencoded` text.

    The commas COMMAS puts between items stay literal (`array=a,b`); a comma inside a value is
    encoded, so the items can be told apart.
    """
    return "&".join(f"{quote(key, safe='')}={','.join(quote(part, safe='') for part in parts)}"
                    for key, parts in _pairs(value, array_format))


def _pairs(value: dict[str, Any], array_format: ArrayFormat) -> list[tuple[str, list[str]]]:
    """Keys in form notation, each with its value (or, for COMMAS, the items to join).

    An array that holds objects or arrays is written as INDICES whatever the format, the only
    notation that keeps its items apart. Empty arrays and objects add nothing.
    """
    pairs: list[tuple[str, list[str]]] = []

    def walk(key: str, item: Any) -> None:
        if isinstance(item, dict):
            for name, sub in item.items():
                walk(f"{key}[{name}]", sub)
            return
        if not isinstance(item, list):
            pairs.append((key, [scalar_text(item)]))
            return
        if any(isinstance(sub, (dict, list)) for sub in item):
            for index, sub in enumerate(item):
                walk(f"{key}[{index}]", sub)
        elif array_format == "COMMAS":
            if item:
                pairs.append((key, [scalar_text(sub) for sub in item]))
        else:
            for index, sub in enumerate(item):
                name = {"INDICES": f"{key}[{index}]", "BRACKETS": f"{key}[]"}.get(array_format, key)
                pairs.append((name, [scalar_text(sub)]))

    for name, item in value.items():
        walk(str(name), item)
    return pairs
