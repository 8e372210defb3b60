"""Bedrock's Converse API as a Task: `arn:aws:states:::aws-sdk:bedrockruntime:converse` (pure: no I/O).

Step Functions has no optimised Converse integration (its Bedrock integration is InvokeModel);
Converse is reached through the AWS SDK integration, whose Parameters and result are the API's
fields in PascalCase. Baton takes the same shape and routes ModelId to a configured provider, as
for InvokeModel, so a definition written for AWS runs unchanged:

    Parameters: ModelId, Messages [{Role, Content: [{Text} | {ToolUse: {ToolUseId, Name, Input}} |
                {ToolResult: {ToolUseId, Content: [{Text} | {Json}], Status}}]}], System [{Text}],
                InferenceConfig {MaxTokens, Temperature, TopP, StopSequences},
                ToolConfig {Tools: [{ToolSpec: {Name, Description, InputSchema: {Json}}}],
                            ToolChoice: {Auto: {}} | {Any: {}} | {Tool: {Name}}}
                (Baton adds Provider and Stream, optional)
    Result:     Output.Message {Role, Content [{Text} | {ToolUse}]}, StopReason, Usage
                {InputTokens, OutputTokens, TotalTokens}, Metrics {LatencyMs}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from steps.llm.errors import InvalidParameters
from steps.llm.shapes import ChatRequest, ChatResponse, Message, ToolCall, ToolChoice, ToolSpec

_KNOWN = {"ModelId", "Messages", "System", "InferenceConfig", "ToolConfig", "Provider", "Stream",
          "AdditionalModelRequestFields", "GuardrailConfig", "PerformanceConfig", "RequestMetadata"}


@dataclass(frozen=True)
class ConverseCall:
    model: str
    provider: str | None
    request: ChatRequest  # its `model` is filled in once the route is known
    stream: bool


def parse_converse(parameters: Any) -> ConverseCall:
    """Converse Parameters as a ChatRequest; InvalidParameters says which field is wrong."""
    if not isinstance(parameters, dict):
        raise InvalidParameters("bedrockruntime:converse Parameters must be an object with ModelId and Messages")
    unknown = set(parameters) - _KNOWN
    if unknown:
        raise InvalidParameters(f"unknown bedrockruntime:converse parameters: {', '.join(sorted(unknown))}")
    model_id = parameters.get("ModelId")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidParameters("bedrockruntime:converse needs ModelId (a model id or ARN)")
    provider = parameters.get("Provider")
    if provider is not None and not isinstance(provider, str):
        raise InvalidParameters("Provider must be a string")
    try:
        messages = tuple(m for turn in parameters.get("Messages") or [] for m in _messages(turn))
        system = "\n".join(block["Text"] for block in parameters.get("System") or [] if "Text" in block) or None
        config = parameters.get("InferenceConfig") or {}
        tools, choice, forced = _tool_config(parameters.get("ToolConfig"))
        request = ChatRequest(model="", messages=messages, system=system, temperature=config.get("Temperature"),
                              max_tokens=config.get("MaxTokens"), top_p=config.get("TopP"),
                              stop=tuple(config.get("StopSequences") or ()), tools=tools, tool_choice=choice,
                              forced_tool=forced)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidParameters(f"bedrockruntime:converse Parameters are not a Converse request: missing or "
                                f"wrong field {exc}") from None
    if not messages:
        raise InvalidParameters("bedrockruntime:converse needs Messages (at least one user turn)")
    model = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    return ConverseCall(model=model, provider=provider, request=request, stream=bool(parameters.get("Stream", False)))


def _messages(turn: dict[str, Any]) -> list[Message]:
    """One Converse turn: text and ToolUse blocks make one message; each ToolResult is a `tool` message."""
    role: Literal["user", "assistant"] = "assistant" if turn["Role"] == "assistant" else "user"
    texts, calls, results = [], [], []
    for block in turn["Content"]:
        if "Text" in block:
            texts.append(str(block["Text"]))
        elif "ToolUse" in block:
            use = block["ToolUse"]
            calls.append(ToolCall(str(use["ToolUseId"]), str(use["Name"]), dict(use.get("Input") or {})))
        elif "ToolResult" in block:
            result = block["ToolResult"]
            content = "".join(part["Text"] if "Text" in part else json.dumps(part.get("Json"))
                              for part in result.get("Content") or [])
            results.append(Message("tool", content, tool_call_id=str(result["ToolUseId"]),
                                   is_error=result.get("Status") == "error"))
    text = "".join(texts)
    spoken = [Message(role, text, tool_calls=tuple(calls))] if text or calls else []
    return results + spoken


def _tool_config(config: Any) -> tuple[tuple[ToolSpec, ...], ToolChoice | None, str | None]:
    if not config:
        return (), None, None
    tools = tuple(ToolSpec(str(t["ToolSpec"]["Name"]), str(t["ToolSpec"].get("Description") or ""),
                           dict(t["ToolSpec"].get("InputSchema", {}).get("Json") or {"type": "object"}))
                  for t in config["Tools"])
    choice = config.get("ToolChoice") or {}
    if "Tool" in choice:
        return tools, None, str(choice["Tool"]["Name"])
    if "Any" in choice:
        return tools, "required", None
    return tools, "auto" if "Auto" in choice else None, None


def converse_output(reply: ChatResponse, metadata: dict[str, Any]) -> dict[str, Any]:
    """What the AWS SDK integration returns for Converse (PascalCase), from the provider's answer."""
    content: list[dict[str, Any]] = [{"Text": reply.text}] if reply.text or not reply.tool_calls else []
    content += [{"ToolUse": {"ToolUseId": c.id, "Name": c.name, "Input": c.arguments}} for c in reply.tool_calls]
    usage = {"InputTokens": reply.input_tokens or 0, "OutputTokens": reply.output_tokens or 0}
    usage["TotalTokens"] = usage["InputTokens"] + usage["OutputTokens"]
    stop = "guardrail_intervened" if reply.stop_reason == "content_filtered" else reply.stop_reason
    return {"Output": {"Message": {"Role": "assistant", "Content": content}}, "StopReason": stop,
            "Usage": usage, "Metrics": {"LatencyMs": int(metadata.get("latency_ms") or 0)}}
