"""The Task Parameters of an LLM step, parsed and checked (pure: no I/O).

`baton:llm` takes Baton's parameters (`LLMTask`, documented in steps/llm/README.md);
`arn:aws:states:::bedrock:invokeModel` takes Bedrock's (`ModelId`, `Body`), so existing
definitions run unchanged, and answers in the shape of the model family's Bedrock response.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from steps.llm.errors import InvalidParameters
from steps.llm.providers import ChatRequest, ChatResponse, Message
from steps.llm.shapes import ToolCall, ToolSpec


class ToolCallParameter(BaseModel):
    """A tool call in Messages, as the answer's ToolCalls gave it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(alias="Id", min_length=1)
    name: str = Field(alias="Name", min_length=1)
    arguments: dict[str, Any] = Field(default={}, alias="Arguments")


class ChatMessage(BaseModel):
    """One turn of Messages. A user or assistant Content is a template, like Prompt; an assistant
    turn with ToolCalls and a `tool` turn (a call's result: ToolCallId, Content any JSON) are not
    rendered, since they hold what a model or a tool produced."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    role: Literal["user", "assistant", "tool"] = Field(alias="Role")
    content: Any = Field(default="", alias="Content")
    tool_calls: list[ToolCallParameter] = Field(default=[], alias="ToolCalls")
    tool_call_id: str | None = Field(default=None, alias="ToolCallId")
    is_error: bool = Field(default=False, alias="IsError")

    @model_validator(mode="after")
    def _check(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs ToolCallId (the Id of the call it answers)")
        if self.role != "tool" and not isinstance(self.content, str | None):
            raise ValueError("Content of a user or assistant message must be a string")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message has ToolCalls")
        return self

    def to_message(self, render: Callable[[str], str]) -> Message:
        if self.role == "tool":
            text = self.content if isinstance(self.content, str) else json.dumps(self.content, ensure_ascii=False)
            return Message("tool", text, tool_call_id=self.tool_call_id, is_error=self.is_error)
        if self.tool_calls:
            return Message("assistant", self.content or "", tool_calls=tuple(
                ToolCall(c.id, c.name, c.arguments) for c in self.tool_calls))
        return Message(self.role, render(self.content or ""))


class ToolParameter(BaseModel):
    """One of Tools: Name, Description, InputSchema (the JSON Schema of its arguments, an object).
    `baton:mcp` listTools answers in this shape."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(alias="Name", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = Field(default="", alias="Description")
    input_schema: dict[str, Any] = Field(default={"type": "object", "properties": {}}, alias="InputSchema")

    def to_spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.input_schema)


class LLMTask(BaseModel):
    """`baton:llm` Parameters. Every text field except Variables is a Jinja2 template."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(default=None, alias="Provider")
    model: str | None = Field(default=None, alias="Model")
    system: str | None = Field(default=None, alias="System")
    system_ref: str | None = Field(default=None, alias="SystemRef")
    prompt: str | None = Field(default=None, alias="Prompt")
    prompt_ref: str | None = Field(default=None, alias="PromptRef")
    messages: list[ChatMessage] = Field(default=[], alias="Messages")
    variables: Any = Field(default=None, alias="Variables")
    temperature: float | None = Field(default=None, alias="Temperature", ge=0, le=2)
    max_tokens: int | None = Field(default=None, alias="MaxTokens", ge=1)
    top_p: float | None = Field(default=None, alias="TopP", gt=0, le=1)
    stop: list[str] = Field(default=[], alias="Stop")
    seed: int | None = Field(default=None, alias="Seed")  # reproducible sampling where the provider supports it
    response_format: Literal["text", "json"] | None = Field(default=None, alias="ResponseFormat")
    json_schema: dict[str, Any] | None = Field(default=None, alias="JsonSchema")
    stream: bool = Field(default=False, alias="Stream")
    tools: list[ToolParameter] = Field(default=[], alias="Tools")
    # "auto" | "none" | "required" | {"Name": TOOL}: let the model choose, no tool, some tool, that tool
    tool_choice: Literal["auto", "none", "required"] | dict[str, str] | None = Field(default=None, alias="ToolChoice")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("response_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> LLMTask:
        if self.prompt is not None and self.prompt_ref is not None:
            raise ValueError("give Prompt or PromptRef, not both")
        if self.system is not None and self.system_ref is not None:
            raise ValueError("give System or SystemRef, not both")
        if self.prompt is None and self.prompt_ref is None and not self.messages:
            raise ValueError("give the prompt: Prompt (a template), PromptRef (a stored template) or Messages")
        if isinstance(self.tool_choice, dict):
            name = self.tool_choice.get("Name")
            if set(self.tool_choice) != {"Name"} or name not in {t.name for t in self.tools}:
                raise ValueError('ToolChoice as an object is {"Name": TOOL}, TOOL one of Tools')
        elif self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise ValueError(f"ToolChoice {self.tool_choice} needs Tools")
        if self.tools and self.response_format == "json":
            raise ValueError("give Tools or ResponseFormat json, not both (a tool's InputSchema shapes its arguments)")
        if self.json_schema is not None:
            if self.response_format == "text":
                raise ValueError("JsonSchema needs ResponseFormat json (or no ResponseFormat)")
            self.response_format = "json"
        return self

    def tool_fields(self) -> dict[str, Any]:
        """ChatRequest's tools, tool_choice and forced_tool."""
        forced = self.tool_choice.get("Name") if isinstance(self.tool_choice, dict) else None
        return {"tools": tuple(t.to_spec() for t in self.tools), "forced_tool": forced,
                "tool_choice": None if isinstance(self.tool_choice, dict) else self.tool_choice}

    @property
    def format(self) -> Literal["text", "json"]:
        return self.response_format or "text"

    def template_variables(self) -> dict[str, Any]:
        """The variables templates see: Variables' keys, or `input` for a Variables that is not an object."""
        if self.variables is None:
            return {}
        if isinstance(self.variables, dict):
            return {str(key): value for key, value in self.variables.items()}
        return {"input": self.variables}


def parse_task(parameters: Any) -> LLMTask:
    """`baton:llm` Parameters; InvalidParameters names each wrong field."""
    if not isinstance(parameters, dict):
        raise InvalidParameters(f"the Parameters of an LLM task must be an object, not {type(parameters).__name__}")
    try:
        return LLMTask.model_validate(parameters)
    except ValidationError as exc:
        raise InvalidParameters(_problems(exc)) from None


# --------------------------------------------------------------------------- Bedrock InvokeModel

BedrockFamily = Literal["messages", "prompt", "titan"]


@dataclass(frozen=True)
class BedrockCall:
    """A Bedrock InvokeModel Task: the model to route, the request, and the response shape to answer in."""

    model: str
    provider: str | None
    family: BedrockFamily
    request: ChatRequest  # its `model` is filled in once the route is known
    stream: bool


def parse_bedrock(parameters: Any) -> BedrockCall:
    """`arn:aws:states:::bedrock:invokeModel` Parameters: ModelId and Body (object or JSON string).

    Bodies of the Messages API (Anthropic: `messages`, `system`, `max_tokens`), of prompt models
    (Llama, Mistral: `prompt`, `max_gen_len`/`max_tokens`) and of Titan (`inputText`,
    `textGenerationConfig`) are understood. Baton adds `Provider` and `Stream` (optional).
    """
    if not isinstance(parameters, dict):
        raise InvalidParameters("bedrock:invokeModel Parameters must be an object with ModelId and Body")
    unknown = set(parameters) - {"ModelId", "Body", "ContentType", "Accept", "Provider", "Stream", "Trace",
                                 "GuardrailIdentifier", "GuardrailVersion", "PerformanceConfigLatency"}
    if unknown:
        raise InvalidParameters(f"unknown bedrock:invokeModel parameters: {', '.join(sorted(unknown))}")
    model_id = parameters.get("ModelId")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidParameters("bedrock:invokeModel needs ModelId (a model id or ARN)")
    model = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    body = parameters.get("Body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            raise InvalidParameters("bedrock:invokeModel Body is a string that is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidParameters("bedrock:invokeModel needs Body: the model's request as an object")
    family, request = _bedrock_request(body)
    provider = parameters.get("Provider")
    if provider is not None and not isinstance(provider, str):
        raise InvalidParameters("Provider must be a string")
    return BedrockCall(model=model, provider=provider, family=family, request=request,
                       stream=bool(parameters.get("Stream", False)))


def _bedrock_request(body: dict[str, Any]) -> tuple[BedrockFamily, ChatRequest]:
    try:
        if "messages" in body:
            system = body.get("system")
            if isinstance(system, list):
                system = "\n".join(part.get("text", "") for part in system if isinstance(part, dict))
            messages = tuple(Message(m["role"], _text(m["content"])) for m in body["messages"])
            return "messages", ChatRequest(
                model="", messages=messages, system=system or None, temperature=body.get("temperature"),
                max_tokens=body.get("max_tokens"), top_p=body.get("top_p"),
                stop=tuple(body.get("stop_sequences") or ()))
        if "prompt" in body:
            return "prompt", ChatRequest(
                model="", messages=(Message("user", str(body["prompt"])),), temperature=body.get("temperature"),
                max_tokens=body.get("max_gen_len") or body.get("max_tokens"), top_p=body.get("top_p"),
                stop=tuple(body.get("stop") or ()))
        if "inputText" in body:
            config = body.get("textGenerationConfig") or {}
            return "titan", ChatRequest(
                model="", messages=(Message("user", str(body["inputText"])),),
                temperature=config.get("temperature"), max_tokens=config.get("maxTokenCount"),
                top_p=config.get("topP"), stop=tuple(config.get("stopSequences") or ()))
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidParameters(f"bedrock:invokeModel Body is not a request this service understands: {exc}") from None
    raise InvalidParameters("bedrock:invokeModel Body must have `messages` (Messages API), `prompt` "
                            "(Llama, Mistral) or `inputText` (Titan)")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def bedrock_output(family: BedrockFamily, reply: ChatResponse, task_id: str) -> dict[str, Any]:
    """What Step Functions' InvokeModel integration returns: the model's response as `Body`."""
    stopped_by_length = reply.finish_reason in ("length", "max_tokens")
    body: dict[str, Any]
    if family == "messages":
        body = {"id": f"msg_{task_id[-24:]}", "type": "message", "role": "assistant", "model": reply.model,
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": "max_tokens" if stopped_by_length else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}}
    elif family == "prompt":
        body = {"generation": reply.text, "prompt_token_count": reply.input_tokens,
                "generation_token_count": reply.output_tokens, "stop_reason": "length" if stopped_by_length else "stop"}
    else:
        body = {"inputTextTokenCount": reply.input_tokens, "results": [
            {"tokenCount": reply.output_tokens, "outputText": reply.text,
             "completionReason": "LENGTH" if stopped_by_length else "FINISH"}]}
    return {"Body": body, "ContentType": "application/json"}


def _problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "Parameters"
        problems.append(f"{where}: {error['msg']}")
    return "invalid LLM Parameters: " + "; ".join(problems)
