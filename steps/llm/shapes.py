"""The shapes every LLM provider maps to and from its wire format: a `ChatRequest` (messages,
which may carry tool calls and tool results, and the tools offered) and a `ChatResponse` (text,
tool calls, usage). Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and the JSON Schema of its arguments."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for: the provider's id for it, the tool's name, the arguments (an object)."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One turn. An assistant turn may carry `tool_calls`; a `tool` turn is one call's result
    (`tool_call_id` names the call, `content` is the result as text, `is_error` if the tool failed)."""

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False


# How the model may use the tools: let it choose, forbid tools, require one, or require a named one.
ToolChoice = Literal["auto", "none", "required"]


@dataclass(frozen=True)
class ChatRequest:
    """One call: what every provider understands (each maps it to its own wire format)."""

    model: str  # the provider's name for the model
    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    response_format: Literal["text", "json"] = "text"
    json_schema: dict[str, Any] | None = None
    seed: int | None = None  # sent where the API takes one (openai, huggingface); Anthropic's does not
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None  # None: the provider's default (auto when tools are given)
    forced_tool: str | None = None  # the one tool the model must call (ToolChoice {"Name": ...})


@dataclass
class ChatResponse:
    text: str
    model: str  # as the provider reported it (a server alias, a dated snapshot, ...)
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # provider extras (e.g. timings)

    @property
    def stop_reason(self) -> str:
        """Why the answer ended, in the Anthropic/Bedrock Converse vocabulary every shape answers with:
        end_turn, tool_use, max_tokens, stop_sequence or content_filtered."""
        if self.tool_calls:
            return "tool_use"
        return _STOP_REASONS.get(self.finish_reason or "", "end_turn")


_STOP_REASONS = {"length": "max_tokens", "max_tokens": "max_tokens", "tool_calls": "tool_use",
                 "tool_use": "tool_use", "stop_sequence": "stop_sequence", "content_filter": "content_filtered",
                 "refusal": "content_filtered", "guardrail_intervened": "content_filtered"}
