"""Variants of a sub-task: what each one changes in the target state's Parameters (pure).

A variant overrides Model, Provider, PromptRef, SystemRef, Temperature and MaxTokens of the
target state in a copy of the definition; nothing else changes. On the command line:

    --variant NAME:model=smollm2,prompt=story:outline@v2,temperature=0.2,max_tokens=64

`prompt=@v2` (or `system=@v2`) keeps the state's prompt and changes its version only. Without a
target state (the whole workflow), Model, Provider, Temperature and MaxTokens apply to every
`baton:llm` Task; a prompt is one state's, so PromptRef/SystemRef need a state.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.evaluation.errors import VariantError

# Variant field -> the Task Parameter it overrides.
PARAMETERS = {"model": "Model", "provider": "Provider", "prompt_ref": "PromptRef", "system_ref": "SystemRef",
              "temperature": "Temperature", "max_tokens": "MaxTokens"}
# A Parameter that a variant's field replaces, and the fields it cannot stand beside.
CONFLICTS = {"PromptRef": ("Prompt",), "SystemRef": ("System",)}
FLAG_KEYS = {"model": "model", "provider": "provider", "prompt": "prompt_ref", "prompt_ref": "prompt_ref",
             "system": "system_ref", "system_ref": "system_ref", "temperature": "temperature",
             "max_tokens": "max_tokens", "max-tokens": "max_tokens"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
LLM_RESOURCE = "baton:llm"


@dataclass(frozen=True)
class Variant:
    """One way to run the sub-task; a field left None keeps the definition's value."""

    name: str
    model: str | None = None
    provider: str | None = None
    prompt_ref: str | None = None
    system_ref: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def parse_variant_flag(text: str) -> Variant:
    """`NAME:key=value,key=value` (keys: model, provider, prompt, system, temperature, max_tokens)."""
    name, sep, rest = text.partition(":")
    if not sep:
        raise VariantError(f"--variant {text!r}: expected NAME:key=value,..., "
                           "e.g. --variant small:model=smollm2,prompt=@v2")
    fields: dict[str, Any] = {"name": name.strip()}
    for pair in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = pair.partition("=")
        if not eq or key.strip() not in FLAG_KEYS:
            raise VariantError(f"--variant {name!r}: {pair!r} is not key=value with a key among "
                               f"{', '.join(sorted(set(FLAG_KEYS) - {'max-tokens', 'prompt_ref', 'system_ref'}))}")
        fields[FLAG_KEYS[key.strip()]] = value.strip()
    return parse_variant_entry(fields, f"--variant {name!r}")


def parse_variant_entry(entry: Any, where: str) -> Variant:
    """One entry of a variants file's `variants:` list (or a parsed flag); checks every field."""
    if not isinstance(entry, dict):
        raise VariantError(f"{where}: a variant is a mapping with a name and what it overrides")
    unknown = sorted(set(entry) - {"name", *PARAMETERS})
    if unknown:
        raise VariantError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} "
                           f"(a variant has: name, {', '.join(PARAMETERS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise VariantError(f"{where}: the name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")
    values: dict[str, Any] = {"name": name}
    for key in ("model", "provider", "prompt_ref", "system_ref"):
        if entry.get(key) is not None:
            if not isinstance(entry[key], str) or not entry[key]:
                raise VariantError(f"variant {name!r}: {key} must be a non-empty string")
            values[key] = entry[key]
    if entry.get("temperature") is not None:
        values["temperature"] = _number(entry["temperature"], name, "temperature", 0.0, 2.0)
    if entry.get("max_tokens") is not None:
        values["max_tokens"] = int(_number(entry["max_tokens"], name, "max_tokens", 1, 1_000_000, integer=True))
    return Variant(**values)


def _number(value: Any, name: str, key: str, low: float, high: float, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise VariantError(f"variant {name!r}: {key} {value!r} is not {kind}") from None
    if isinstance(value, bool) or not low <= number <= high or (integer and float(value) != number):
        kind = "an integer " if integer else ""
        raise VariantError(f"variant {name!r}: {key} must be {kind}from {low:g} to {high:g}")
    return number


def check_model(variant: Variant, models: set[str], providers: set[str]) -> None:
    """Refuse a model or provider the LLM configuration does not know. With no model routes
    configured every name goes to the default provider, so any model name is accepted."""
    if variant.provider is not None and variant.provider not in providers:
        raise VariantError(f"variant {variant.name!r}: unknown provider {variant.provider!r}; "
                           f"configured: {', '.join(sorted(providers)) or 'none'}")
    if variant.model is not None and variant.provider is None and models and variant.model not in models:
        raise VariantError(f"variant {variant.name!r}: unknown model {variant.model!r}; configured: "
                           f"{', '.join(sorted(models))} (or name its provider too)")


def apply_variant(definition: dict[str, Any], state: str | None, variant: Variant) -> dict[str, Any]:
    """A copy of the definition with the variant's overrides in the target state's Parameters
    (every `baton:llm` Task when `state` is None). Raises VariantError saying why it cannot."""
    document = copy.deepcopy(definition)
    overrides = {PARAMETERS[key]: value for key, value in variant.as_dict().items() if key != "name"}
    targets = [(name, body) for name, body in iter_states(document) if state is None or name == state]
    if state is not None and not targets:
        raise VariantError(f"variant {variant.name!r}: no state named {state!r} in the definition")
    if state is None:
        if "PromptRef" in overrides or "SystemRef" in overrides:
            raise VariantError(f"variant {variant.name!r}: a prompt belongs to one state: give --state "
                               "to compare prompt versions")
        targets = [(name, body) for name, body in targets if _is_llm_task(body)]
    for name, body in targets:
        if not _is_llm_task(body):
            raise VariantError(f"variant {variant.name!r}: state {name!r} is not a {LLM_RESOURCE} Task "
                               f"(its Resource is {body.get('Resource')!r})")
        parameters = body.setdefault("Parameters", {})
        if not isinstance(parameters, dict):
            raise VariantError(f"variant {variant.name!r}: state {name!r} has no Parameters object")
        for key, value in overrides.items():
            if key in ("PromptRef", "SystemRef") and isinstance(value, str) and value.startswith("@"):
                value = _with_version(parameters.get(key), value, variant.name, name, key)
            parameters.pop(f"{key}.$", None)
            for conflicting in CONFLICTS.get(key, ()):
                parameters.pop(conflicting, None)
                parameters.pop(f"{conflicting}.$", None)
            parameters[key] = value
    return document


def _with_version(current: Any, version: str, variant: str, state: str, key: str) -> str:
    if not isinstance(current, str) or "@" not in current:
        raise VariantError(f"variant {variant!r}: {key}={version} changes a version, but state {state!r} has no "
                           f"static versioned {key} (give the whole reference, e.g. store:name@v2)")
    return current.rsplit("@", 1)[0] + version


def _is_llm_task(body: dict[str, Any]) -> bool:
    resource = body.get("Resource")
    return body.get("Type") == "Task" and isinstance(resource, str) and (
        resource == LLM_RESOURCE or resource.startswith(LLM_RESOURCE + "."))


def iter_states(scope: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of a definition, nested ones (Parallel branches, Map processors) too."""
    if not isinstance(scope, dict):
        return
    for name, body in (scope.get("States") or {}).items():
        if isinstance(body, dict):
            yield name, body
            for branch in body.get("Branches") or []:
                yield from iter_states(branch)
            for key in ("ItemProcessor", "Iterator"):
                yield from iter_states(body.get(key))
