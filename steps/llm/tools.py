"""Tool calling, what every provider shares (pure: no I/O).

- `check_tool_calls`: the model's calls against the tools offered: an unknown tool, or arguments
  that fail the tool's InputSchema, is `Baton.LLM.InvalidToolArguments` (Catch can route it).
- Constrained decoding (`constrained_request`, `read_constrained`), for a provider configured with
  `tool_calling: constrained`: a small model whose native tool calling is unreliable (the offline
  smollm2 is 135M parameters) is asked for ONE JSON value instead, with a JSON Schema the server
  turns into a grammar (llama.cpp, vLLM): either `{"answer": "..."}` or `{"tool": NAME,
  "arguments": {...}}` whose arguments match that tool's schema. The tools are listed in the system
  prompt, and the history's tool calls and results are written as text turns, since the server is
  not told about tools at all. The answer is then read back into text or a `ToolCall`. Unless a
  tool is required, a tool already called in the conversation is not offered again: a tiny model
  otherwise repeats the last call it saw instead of answering.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from steps.llm.errors import InvalidParameters, InvalidResponse, InvalidToolArguments
from steps.llm.shapes import ChatRequest, ChatResponse, Message, ToolCall, ToolSpec

CONSTRAINED_ANSWER_CHARS = 400  # bounds the free-text branch so a tiny model cannot ramble forever


def check_tool_specs(tools: tuple[ToolSpec, ...]) -> None:
    """Each tool's InputSchema is a JSON Schema of an object, and names are unique."""
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise InvalidParameters(f"Tools: {tool.name!r} is given twice")
        seen.add(tool.name)
        try:
            validator_for(tool.input_schema).check_schema(tool.input_schema)
        except SchemaError as exc:
            raise InvalidParameters(f"Tools: the InputSchema of {tool.name!r} is not a valid JSON Schema: "
                                    f"{exc.message}") from None
        if tool.input_schema.get("type", "object") != "object":
            raise InvalidParameters(f"Tools: the InputSchema of {tool.name!r} must describe an object")


def check_tool_calls(tools: tuple[ToolSpec, ...], calls: list[ToolCall]) -> None:
    """Raise InvalidToolArguments for a call of a tool not offered or with arguments its schema refuses."""
    by_name = {tool.name: tool for tool in tools}
    for call in calls:
        tool = by_name.get(call.name)
        if tool is None:
            raise InvalidToolArguments(f"the model called {call.name!r}, which is not one of the Tools "
                                       f"({', '.join(sorted(by_name)) or 'none'})")
        validator = validator_for(tool.input_schema)(tool.input_schema)
        error = next(iter(sorted(validator.iter_errors(call.arguments), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise InvalidToolArguments(f"the model called {call.name!r} (call {call.id}) with arguments that fail "
                                       f"its InputSchema at {where}: {error.message}; arguments: "
                                       f"{json.dumps(call.arguments)[:300]}")


def parse_arguments(text: str, name: str, call_id: str) -> dict[str, Any]:
    """A tool call's arguments sent as a JSON string (OpenAI's wire format) as an object."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        raise InvalidToolArguments(f"the model called {name!r} (call {call_id}) with arguments that are not "
                                   f"JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise InvalidToolArguments(f"the model called {name!r} (call {call_id}) with arguments that are not "
                                   f"an object: {text[:200]!r}")
    return value


def tool_output(reply: ChatResponse) -> dict[str, Any]:
    """What a `baton:llm` Task with Tools adds to its answer: StopReason, ToolCalls, and Message,
    the assistant turn to append to Messages for the next call."""
    calls = [{"Id": c.id, "Name": c.name, "Arguments": c.arguments} for c in reply.tool_calls]
    message: dict[str, Any] = {"Role": "assistant", "Content": reply.text}
    if calls:
        message["ToolCalls"] = calls
    return {"StopReason": reply.stop_reason, "ToolCalls": calls, "Message": message}


# --------------------------------------------------------------------------- constrained decoding


def constrained_schema(request: ChatRequest) -> dict[str, Any]:
    """The JSON Schema of `{"answer": ...}` or one `{"tool": ..., "arguments": ...}` per tool allowed."""
    tools = [t for t in request.tools if request.forced_tool in (None, t.name)]
    may_answer = request.tool_choice != "required" and request.forced_tool is None
    if may_answer:
        # A tiny model repeats the call it just saw; a tool already called is not offered again
        # (unless a tool is required), so the conversation moves on to an answer.
        called = {c.name for m in request.messages for c in m.tool_calls}
        tools = [t for t in tools if t.name not in called]
    branches: list[dict[str, Any]] = [
        {"type": "object", "properties": {"tool": {"const": t.name}, "arguments": t.input_schema},
         "required": ["tool", "arguments"], "additionalProperties": False} for t in tools]
    if may_answer:
        branches.insert(0, {"type": "object", "properties": {
            "answer": {"type": "string", "maxLength": CONSTRAINED_ANSWER_CHARS}},
            "required": ["answer"], "additionalProperties": False})
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def constrained_request(request: ChatRequest) -> ChatRequest:
    """The request a server without tool calling answers: JSON constrained by `constrained_schema`."""
    listing = "\n".join(f"- {t.name}: {t.description or '(no description)'}; arguments: "
                        f"{json.dumps(t.input_schema.get('properties', {}))}" for t in request.tools)
    instruction = ("You can call these tools:\n" + listing + "\n\nReply with one JSON object: "
                   '{"tool": NAME, "arguments": {...}} to call a tool, or {"answer": TEXT} when you can answer. '
                   "Tool results come back as messages starting with 'Result of'.")
    system = f"{request.system}\n\n{instruction}" if request.system else instruction
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    return replace(request, system=system, messages=tuple(_as_text(m, names) for m in request.messages),
                   response_format="json", json_schema=constrained_schema(request), tools=(),
                   tool_choice=None, forced_tool=None)


def read_constrained(reply: ChatResponse, turn: int) -> ChatResponse:
    """The constrained JSON answer as text or a tool call (ids are `call_<turn>`: the server has none)."""
    try:
        value = json.loads(reply.text)
    except ValueError:
        if reply.finish_reason in ("length", "max_tokens"):
            return reply  # cut off mid-JSON: StopReason max_tokens tells the workflow
        raise InvalidResponse(f"the constrained tool answer is not JSON: {reply.text[:200]!r}") from None
    if isinstance(value, dict) and isinstance(value.get("tool"), str):
        arguments = value.get("arguments")
        call = ToolCall(id=f"call_{turn}", name=value["tool"], arguments=arguments if isinstance(arguments, dict) else {})
        return replace(reply, text="", tool_calls=[call], finish_reason="tool_calls")
    if isinstance(value, dict) and isinstance(value.get("answer"), str):
        return replace(reply, text=value["answer"])
    raise InvalidResponse(f"the constrained tool answer has neither answer nor tool: {reply.text[:200]!r}")


def _as_text(message: Message, names: dict[str, str]) -> Message:
    if message.role == "tool":
        name = names.get(message.tool_call_id or "", message.tool_call_id)
        status = "failed" if message.is_error else "returned"
        return Message("user", f"Result of {name}: the tool {status} {message.content}")
    if message.tool_calls:
        calls = [{"tool": c.name, "arguments": c.arguments} for c in message.tool_calls]
        return Message("assistant", json.dumps(calls[0] if len(calls) == 1 else calls))
    return message
