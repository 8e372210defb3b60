"""The Task Parameters of an LLM step, parsed and checked (pure: no I/O).

`baton:llm` takes Baton's parameters (`LLMTask`, documented in steps/llm/README.md);
`arn:aws:states:::bedrock:invokeModel` takes Bedrock's (`ModelId`, `Body`), so existing
definitions run unchanged, and answers in the shape of the model family's Bedrock response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from steps.llm.errors import InvalidParameters
from steps.llm.providers import ChatRequest, ChatResponse, Message


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    role: Literal["user", "assistant"] = Field(alias="Role")
    content: str = Field(alias="Content")  # a template, like Prompt


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
        if self.json_schema is not None:
            if self.response_format == "text":
                raise ValueError("JsonSchema needs ResponseFormat json (or no ResponseFormat)")
            self.response_format = "json"
        return self

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
