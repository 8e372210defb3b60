"""The `llm` step's handler: `baton:llm`, `arn:aws:states:::bedrock:invokeModel` and Converse Tasks.

For each command: parse the Parameters (`task.py`), route Provider/Model to a configured provider
(`config.py`), render the prompt templates with the Variables in the sandbox (`prompts.py`), call
the provider (`providers.py`) while publishing tokens to `baton.streams` if the Task streams
(`streaming.py`), parse and validate a JSON answer, and answer with the output plus metadata:
provider, model, input/output tokens, latency, time to first token, cost, and the rendered prompt.
With the response cache on (`cache.py`, off by default), a deterministic call answered before is
answered from the cache: no provider call, `"cache": "hit"` in the metadata, nothing used or paid.
Every failure is an ASL error `Baton.LLM.*` (`errors.py`) so a definition can Retry and Catch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from prometheus_client import CollectorRegistry

from schemas.flow import without_flow_parameter
from schemas.resources import REQUEST_RESPONSE, parse_resource, service_for
from schemas.steps import StepCommand
from steps.llm.cache import CachedAnswer, ResponseCache, cache_key, cacheable
from steps.llm.config import LLMSettings, ResolvedModel
from steps.llm.converse import converse_output, parse_converse
from steps.llm.errors import InvalidParameters, InvalidResponse, LLMError, RateLimited
from steps.llm.metrics import LLMMetrics
from steps.llm.prompts import PromptLibrary
from steps.llm.providers import ChatRequest, ChatResponse, Message, Provider, make_provider
from steps.llm.streaming import Send, TokenStream
from steps.llm.task import LLMTask, bedrock_output, parse_bedrock, parse_task
from steps.llm.tools import check_tool_calls, check_tool_specs, tool_output
from steps.sdk.handler import StepHandler, StepOutput
from steps.sdk.step import StepError

SERVICE = "llm"
log = logging.getLogger(__name__)


class LLMStepError(StepError):
    """A failed LLM task: the ASL error and cause, plus what is known of the call (`metadata`)."""

    def __init__(self, error: LLMError) -> None:
        super().__init__(error.error, error.cause)
        self.metadata = error.metadata
        if isinstance(error, RateLimited) and error.retry_after_seconds is not None:
            self.metadata["retry_after_seconds"] = error.retry_after_seconds  # for flow control's pause


@dataclass
class _Call:
    """One provider call's measurements, filled in as it runs."""

    started: float = field(default_factory=time.monotonic)
    first_text: float | None = None
    finished: float | None = None

    def on_text(self) -> None:
        if self.first_text is None:
            self.first_text = time.monotonic()


class LLMHandler(StepHandler):
    """Answers LLM step commands (see the module docstring). Call `aclose` when done."""

    def __init__(self, settings: LLMSettings, *, registry: CollectorRegistry | None = None,
                 metrics: LLMMetrics | None = None, send: Send | None = None, streams_topic: str = "baton.streams",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or LLMMetrics(registry or CollectorRegistry())
        self.providers: dict[str, Provider] = {
            name: make_provider(name, config, transport=transport) for name, config in settings.providers.items()}
        self.prompts = PromptLibrary(settings, transport=transport)
        self.send = send  # publishes stream chunks; None: "Stream" is accepted but nothing is published
        self.streams_topic = streams_topic
        self.cache = ResponseCache(settings.cache.path, settings.cache.ttl_seconds) if settings.cache.enabled else None

    async def aclose(self) -> None:
        await asyncio.gather(*(provider.aclose() for provider in self.providers.values()),
                             self.prompts.aclose(), return_exceptions=True)
        if self.cache is not None:
            self.cache.close()

    async def run(self, command: StepCommand) -> StepOutput:
        # FlowControl (Tenant, Priority) is for the flow controller (flow_service.py), not the call.
        command = command.model_copy(update={"parameters": without_flow_parameter(command.parameters)})
        try:
            resource = parse_resource(command.resource)
            if service_for(command.resource) != SERVICE or resource.pattern != REQUEST_RESPONSE:
                raise InvalidParameters(f"the llm service does not run {command.resource!r}: it answers baton:llm, "
                                        "arn:aws:states:::bedrock:invokeModel and "
                                        "arn:aws:states:::aws-sdk:bedrockruntime:converse (request-response)")
            if resource.service == "bedrock":
                return await self._run_bedrock(command)
            if resource.service == "aws-sdk":
                return await self._run_converse(command)
            return await self._run_task(command)
        except LLMError as exc:
            raise LLMStepError(exc) from None

    # --- baton:llm -----------------------------------------------------------------------------

    async def _run_task(self, command: StepCommand) -> StepOutput:
        task = parse_task(command.parameters)
        route = self._resolve(task.provider, task.model)
        if task.json_schema is not None:
            _check_schema(task.json_schema)
        request, prompt_record = await self._render(task, route)
        check_tool_specs(request.tools)
        reply, metadata = await self._call(command, route, request, task.stream, prompt_record)
        output: dict[str, Any] = {"Text": reply.text}
        if request.tools:
            self._check_calls(route, request, reply, metadata)
            output.update(tool_output(reply))
        if task.format == "json":
            try:
                output["Json"] = parse_json_answer(reply.text, task.json_schema)
            except InvalidResponse as exc:
                exc.metadata = metadata
                self.metrics.requests.labels(route.provider, route.model, exc.error).inc()
                raise
        await self._succeeded(route, reply, metadata)
        output.update({"Model": route.model, "Provider": route.provider, "ResponseModel": reply.model,
                       "FinishReason": reply.finish_reason, "Usage": _usage(metadata)})
        return StepOutput(output, metadata)

    async def _render(self, task: LLMTask, route: ResolvedModel) -> tuple[ChatRequest, dict[str, Any]]:
        variables = task.template_variables()
        record: dict[str, Any] = {}
        system = None
        if task.system_ref is not None:
            loaded = await self.prompts.load(task.system_ref)
            system = self.prompts.render(loaded.source, variables, what=f"SystemRef {loaded.ref}")
            record.update(system_ref=str(loaded.ref), system_ref_sha256=loaded.sha256)
        elif task.system is not None:
            system = self.prompts.render(task.system, variables, what="System")
        messages = [m.to_message(partial(self._render_message, variables, i)) for i, m in enumerate(task.messages)]
        if task.prompt_ref is not None:
            loaded = await self.prompts.load(task.prompt_ref)
            messages.append(Message("user", self.prompts.render(loaded.source, variables,
                                                                what=f"PromptRef {loaded.ref}")))
            record.update(prompt_ref=str(loaded.ref), prompt_ref_sha256=loaded.sha256)
        elif task.prompt is not None:
            messages.append(Message("user", self.prompts.render(task.prompt, variables, what="Prompt")))
        request = ChatRequest(
            model=route.upstream_model, messages=tuple(messages), system=system, temperature=task.temperature,
            max_tokens=task.max_tokens, top_p=task.top_p, stop=tuple(task.stop), response_format=task.format,
            json_schema=task.json_schema, seed=task.seed, **task.tool_fields())
        return request, {**self._prompt_record(request), **record}

    def _render_message(self, variables: dict[str, Any], index: int, text: str) -> str:
        return self.prompts.render(text, variables, what=f"Messages[{index}].Content")

    def _prompt_record(self, request: ChatRequest) -> dict[str, Any]:
        """The rendered prompt as recorded in the history (each text capped; digest of the whole)."""
        limit = self.settings.record_prompt_chars
        whole = json.dumps({"system": request.system, "messages": [[m.role, m.content] for m in request.messages]},
                           ensure_ascii=False)
        record: dict[str, Any] = {"sha256": hashlib.sha256(whole.encode()).hexdigest()}
        if limit:
            if request.system is not None:
                record["system"] = _cap(request.system, limit)
            record["messages"] = [{"role": m.role, "content": _cap(m.content, limit)} for m in request.messages]
        return record

    # --- bedrock:invokeModel -------------------------------------------------------------------

    async def _run_bedrock(self, command: StepCommand) -> StepOutput:
        call = parse_bedrock(command.parameters)
        route = self._resolve(call.provider, call.model)
        request = ChatRequest(**{**call.request.__dict__, "model": route.upstream_model})
        reply, metadata = await self._call(command, route, request, call.stream, self._prompt_record(request))
        await self._succeeded(route, reply, metadata)
        return StepOutput(bedrock_output(call.family, reply, command.task_id), metadata)

    # --- bedrock Converse (the AWS SDK integration), and tool calls ------------------------------

    async def _run_converse(self, command: StepCommand) -> StepOutput:
        call = parse_converse(command.parameters)
        route = self._resolve(call.provider, call.model)
        request = replace(call.request, model=route.upstream_model)
        check_tool_specs(request.tools)
        reply, metadata = await self._call(command, route, request, call.stream, self._prompt_record(request))
        if request.tools:
            self._check_calls(route, request, reply, metadata)
        await self._succeeded(route, reply, metadata)
        return StepOutput(converse_output(reply, metadata), metadata)

    def _check_calls(self, route: ResolvedModel, request: ChatRequest, reply: ChatResponse,
                     metadata: dict[str, Any]) -> None:
        """The model's tool calls name offered tools with arguments their schemas accept."""
        metadata["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
        try:
            check_tool_calls(request.tools, reply.tool_calls)
        except LLMError as exc:
            exc.metadata = metadata
            self.metrics.requests.labels(route.provider, route.model, exc.error).inc()
            raise

    # --- the call ------------------------------------------------------------------------------

    def _resolve(self, provider: str | None, model: str | None) -> ResolvedModel:
        try:
            return self.settings.resolve(provider, model)
        except KeyError as exc:
            raise InvalidParameters(str(exc.args[0])) from None

    async def _call(self, command: StepCommand, route: ResolvedModel, request: ChatRequest, stream: bool,
                    prompt_record: dict[str, Any]) -> tuple[ChatResponse, dict[str, Any]]:
        """Call the provider (streaming to Kafka if asked), or answer from the cache; record usage and timings."""
        provider = self.providers[route.provider]
        labels = (route.provider, route.model)
        metadata: dict[str, Any] = {"provider": route.provider, "model": route.model,
                                    "provider_model": route.upstream_model, "prompt": prompt_record}
        looked_up = time.monotonic()
        cached = await self._lookup(route, request, metadata)
        if cached is not None:
            return await self._replay(command, route, cached, stream, metadata, looked_up), metadata
        tokens = TokenStream(self.send, self.streams_topic, command.execution_id, command.task_id) \
            if stream and self.send is not None else None
        timing = _Call()

        def on_text(text: str) -> None:
            timing.on_text()
            if tokens is not None:
                tokens.feed(text)

        try:
            reply = await provider.complete(request, on_text)
        except LLMError as exc:
            elapsed = time.monotonic() - timing.started
            metadata["latency_ms"] = _ms(elapsed)
            self.metrics.requests.labels(*labels, exc.error).inc()
            self.metrics.duration.labels(*labels, exc.error).observe(elapsed)
            exc.metadata = {**metadata, **exc.metadata}
            raise
        finally:
            if tokens is not None:
                metadata["stream_chunks"] = await _close(tokens)
                self.metrics.stream_chunks.labels(*labels).inc(metadata["stream_chunks"])
        finished = time.monotonic()
        elapsed = finished - timing.started
        self.metrics.duration.labels(*labels, "ok").observe(elapsed)
        metadata.update(response_model=reply.model, finish_reason=reply.finish_reason,
                        input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                        latency_ms=_ms(elapsed))
        if timing.first_text is not None:
            first = timing.first_text - timing.started
            metadata["time_to_first_token_ms"] = _ms(first)
            self.metrics.time_to_first_token.labels(*labels).observe(first)
            if reply.output_tokens and reply.output_tokens > 1 and finished > timing.first_text:
                rate = (reply.output_tokens - 1) / (finished - timing.first_text)
                metadata["output_tokens_per_second"] = round(rate, 2)
                self.metrics.output_rate.labels(*labels).observe(rate)
        for direction, count in (("input", reply.input_tokens), ("output", reply.output_tokens)):
            if count:
                self.metrics.tokens.labels(*labels, direction).inc(count)
        price = self.settings.price(route.provider, route.model)
        if price is not None:
            metadata["cost_usd"] = price.cost(reply.input_tokens, reply.output_tokens)
            self.metrics.cost.labels(*labels).inc(metadata["cost_usd"])
        return reply, metadata

    # --- the response cache (cache.py) ---------------------------------------------------------

    async def _lookup(self, route: ResolvedModel, request: ChatRequest,
                      metadata: dict[str, Any]) -> CachedAnswer | None:
        """The cached answer to a deterministic call; None if the provider must answer.

        Sets metadata["cache"] (hit, miss, or skip: not deterministic, or the cache failed) when the
        cache is on. A cache that cannot be read never fails a task: it is a skip, logged.
        """
        if self.cache is None:
            return None
        cached, outcome = None, "skip"
        if cacheable(request, route.config.kind):
            key = cache_key(route.provider, route.config, request)
            try:
                cached = await asyncio.to_thread(self.cache.get, key)
                outcome = "hit" if cached is not None else "miss"
                metadata["cache_key"] = key
            except (sqlite3.Error, OSError, ValueError, KeyError):
                log.warning("the LLM response cache %s cannot be read; calling the provider", self.cache.path,
                            exc_info=True)
        metadata["cache"] = outcome
        self.metrics.cache.labels(route.provider, route.model, outcome).inc()
        return cached

    async def _replay(self, command: StepCommand, route: ResolvedModel, cached: CachedAnswer, stream: bool,
                      metadata: dict[str, Any], started: float) -> ChatResponse:
        """A cache hit as the provider's answer. Nothing is used or paid: input/output tokens and
        cost are 0 and the stored call's are `cached_*`; a streamed Task still streams the text."""
        if stream and self.send is not None:
            tokens = TokenStream(self.send, self.streams_topic, command.execution_id, command.task_id)
            tokens.feed(cached.text)
            metadata["stream_chunks"] = await _close(tokens)
            self.metrics.stream_chunks.labels(route.provider, route.model).inc(metadata["stream_chunks"])
        metadata.update(response_model=cached.model, finish_reason=cached.finish_reason, input_tokens=0,
                        output_tokens=0, latency_ms=_ms(time.monotonic() - started),
                        cached_input_tokens=cached.input_tokens, cached_output_tokens=cached.output_tokens,
                        cached_latency_ms=cached.latency_ms,
                        cached_at=datetime.fromtimestamp(cached.stored_at, UTC).isoformat(timespec="seconds"))
        price = self.settings.price(route.provider, route.model)
        if price is not None:
            metadata["cost_usd"] = 0.0
            metadata["cached_cost_usd"] = price.cost(cached.input_tokens, cached.output_tokens)
        # The answer as the provider gave it (a Bedrock Body shows the stored call's usage).
        return ChatResponse(text=cached.text, model=cached.model, finish_reason=cached.finish_reason,
                            input_tokens=cached.input_tokens, output_tokens=cached.output_tokens)

    async def _succeeded(self, route: ResolvedModel, reply: ChatResponse, metadata: dict[str, Any]) -> None:
        """Count a provider call whose task succeeded, and store its answer if the cache missed it.

        A hit is not a provider call: it is counted in `baton_llm_cache_total` only. Only answers of
        tasks that succeeded are stored, so a Retry after a bad answer is not given it again.
        """
        if metadata.get("cache") == "hit":
            return
        self.metrics.requests.labels(route.provider, route.model, "ok").inc()
        if self.cache is None or metadata.get("cache") != "miss":
            return
        answer = CachedAnswer(text=reply.text, model=reply.model, finish_reason=reply.finish_reason,
                              input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                              latency_ms=metadata.get("latency_ms"))
        try:
            await asyncio.to_thread(self.cache.put, metadata["cache_key"], answer)
        except (sqlite3.Error, OSError):
            log.warning("the LLM response cache %s cannot be written; the answer is not kept", self.cache.path,
                        exc_info=True)


def parse_json_answer(text: str, schema: dict[str, Any] | None) -> Any:
    """The JSON value of an answer (a Markdown fence around it is tolerated), checked against `schema`.

    Raises InvalidResponse (Baton.LLM.InvalidResponse) saying where it fails.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidResponse(f"ResponseFormat json: the answer is not JSON ({exc}); it begins "
                              f"{text[:120]!r} (bound its size with JsonSchema maxLength/maxItems, "
                              "or raise MaxTokens)") from None
    if schema is not None:
        validator = validator_for(schema)(schema)
        error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise InvalidResponse(f"the JSON answer does not match JsonSchema at {where}: {error.message}")
    return value


def _check_schema(schema: dict[str, Any]) -> None:
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidParameters(f"JsonSchema is not a valid JSON Schema: {exc.message}") from None


async def _close(tokens: TokenStream) -> int:
    try:
        return await asyncio.wait_for(tokens.close(), timeout=10)
    except Exception:  # includes TimeoutError: the stream is best effort
        log.warning("stream of task %s did not close cleanly", tokens.task_id, exc_info=True)
        return tokens.seq


def _usage(metadata: dict[str, Any]) -> dict[str, Any]:
    usage = {"InputTokens": metadata.get("input_tokens"), "OutputTokens": metadata.get("output_tokens"),
             "LatencyMs": metadata.get("latency_ms"), "TimeToFirstTokenMs": metadata.get("time_to_first_token_ms")}
    if "cost_usd" in metadata:
        usage["CostUsd"] = metadata["cost_usd"]
    if "cache" in metadata:
        usage["Cache"] = metadata["cache"]
    return usage


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…[{len(text) - limit} more characters]"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
