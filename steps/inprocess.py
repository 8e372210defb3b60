"""The built-in step services' handlers, run in this process.

`baton execute`, `baton test-state`, the API's TestState and `baton eval` answer `baton:llm`
(and Bedrock's `invokeModel` and `converse`), `baton:http` (and `http:invoke`), `baton:mcp` and
`baton:retrieve` with the very handlers the step services run on Kafka (`LLMHandler`,
`HttpHandler`, `MCPHandler`, `RetrievalHandler`), built
from the same configuration: the LLM file ($BATON_LLM_CONFIG_FILE or `llm_config`), the HTTP
connections ($BATON_HTTP_CONNECTIONS or `connections`), the embeddings and knowledge-base settings
(BATON_EMBEDDINGS_*, BATON_KB_*). So a prompt engineer runs the state they edit with production's
code and no broker.

Conveniences for a definition run from its folder (a deployment configures these explicitly):
- a PromptRef store the LLM file does not name is read from the `prompts/` folder next to the
  definition, and `connections.yaml` (HTTP) and `mcp-connections.yaml` (MCP servers) there are
  used when no connections are configured;
- with no LLM provider configured, the offline model is started on demand (as `baton model up`
  does, and left running for the next run), and likewise the offline embeddings server when the
  embeddings settings point at its default address.

A handler is built on first use, so a definition without LLM states never starts a model.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from schemas.errors import BatonError
from schemas.steps import StepCommand
from steps.sdk.handler import StepHandler

MCP_CONNECTIONS_FILE = "mcp-connections.yaml"  # next to a definition: its MCP servers, when none are configured


class IntegrationUnavailable(BatonError):
    """A built-in integration cannot be set up in-process; the message says why and the fix."""


@dataclass
class LocalIntegrationsConfig:
    """Where the in-process handlers take their configuration from (see the module docstring)."""

    llm_config: str | Path | None = None  # the LLM settings file; default $BATON_LLM_CONFIG_FILE
    connections: str | None = None  # the HTTP connections file; default $BATON_HTTP_CONNECTIONS
    definition: Any = None  # the definition being run: its PromptRef stores are looked up
    definition_dir: Path | None = None  # its folder: prompts/ and connections.yaml
    start_offline_servers: bool = True  # start the offline model / embeddings when they are needed
    stream_every_llm_task: bool = False  # `--stream`: print every LLM answer's tokens as they come
    on_token: Callable[[str, str], None] | None = None  # (task id, text) for streamed tokens
    notice: Callable[[str], None] = field(default=lambda message: None)  # one line, e.g. to stderr
    llm_overrides: dict[str, Any] = field(default_factory=dict)  # LLMSettings fields (e.g. cache)


class LocalIntegrations:
    """`orchestrator.local.runner.Integrations` for llm, http and retrieval. Use `async with`."""

    def __init__(self, config: LocalIntegrationsConfig | None = None) -> None:
        self.config = config or LocalIntegrationsConfig()
        self._handlers: dict[str, StepHandler] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> LocalIntegrations:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def handler_for(self, service: str) -> StepHandler | None:
        builders = {"llm": self._llm, "http": self._http, "retrieval": self._retrieval, "mcp": self._mcp}
        builder = builders.get(service)
        if builder is None:
            return None
        async with self._lock:  # concurrent first uses (Parallel, eval) build one handler
            if service not in self._handlers:
                self._handlers[service] = await builder()
        return self._handlers[service]

    async def aclose(self) -> None:
        handlers, self._handlers = list(self._handlers.values()), {}
        for handler in handlers:
            close = getattr(handler, "aclose", None)
            if close is not None:
                await close()

    # --- llm -----------------------------------------------------------------------------------

    async def _llm(self) -> StepHandler:
        from steps.llm.config import ConfigError, PromptStoreConfig, load_settings
        from steps.llm.handler import LLMHandler

        config_file = self.config.llm_config or os.environ.get("BATON_LLM_CONFIG_FILE") or None
        try:
            configured = config_file is not None or any(name.upper().startswith("BATON_LLM_PROVIDERS")
                                                        for name in os.environ)
            if configured:
                settings = load_settings(config_file, **self.config.llm_overrides)
            else:  # the built-in default would reach one offline server only: route every model
                routes = await self._offline_model_routes()
                settings = load_settings(None, **{**routes, **self.config.llm_overrides})
        except ConfigError as exc:
            raise IntegrationUnavailable(str(exc)) from None
        folder = self._prompts_folder()
        if folder is not None:
            missing = {name: PromptStoreConfig(url=str(folder))
                       for name in prompt_store_names(self.config.definition) if name not in settings.prompt_stores}
            if missing:
                settings = settings.model_copy(update={"prompt_stores": {**settings.prompt_stores, **missing}})
        send = self._send if self.config.on_token is not None else None
        handler = LLMHandler(settings, send=send)
        return _StreamEveryTask(handler) if self.config.stream_every_llm_task else handler

    async def _offline_model_routes(self) -> dict[str, Any]:
        if not self.config.start_offline_servers:
            return {}  # the step service's own default: its first offline server, if one answers
        from infra import local_model

        try:
            servers = await asyncio.to_thread(local_model.ensure_up)
        except (local_model.LocalModelError, ImportError) as exc:
            raise IntegrationUnavailable(f"no LLM provider is configured and the offline model did not start: "
                                         f"{exc}; configure one with BATON_LLM_CONFIG_FILE") from None
        started = [f"{s.alias} {s.base_url}" for s in servers if s.started_here]
        if started:
            self.config.notice(f"started the offline model ({', '.join(started)}); `baton model down` stops it")
        routes: dict[str, Any] = local_model.llm_config(servers)
        return routes

    def _prompts_folder(self) -> Path | None:
        folder = self.config.definition_dir
        if folder is None or not (folder / "prompts").is_dir():
            return None
        return (folder / "prompts").resolve()

    async def _send(self, topic: str, value: bytes, key: bytes) -> object:
        """Stream chunks, printed instead of published (the in-process `Send`)."""
        from schemas.base import decode
        from schemas.streams import StreamChunk

        chunk = decode(StreamChunk, value)
        if chunk.text and self.config.on_token is not None:
            self.config.on_token(chunk.task_id, chunk.text)
        return None

    # --- http ----------------------------------------------------------------------------------

    async def _http(self) -> StepHandler:
        from steps.http.errors import ConnectionConfigError
        from steps.http.service import HttpHandler
        from steps.http.settings import HttpSettings

        source = self.config.connections or os.environ.get("BATON_HTTP_CONNECTIONS") or None
        folder = self.config.definition_dir
        if source is None and folder is not None and (folder / "connections.yaml").is_file():
            source = str((folder / "connections.yaml").resolve())
        try:
            return HttpHandler(settings=HttpSettings(connections=source))
        except ConnectionConfigError as exc:
            raise IntegrationUnavailable(str(exc)) from None

    # --- mcp -----------------------------------------------------------------------------------

    async def _mcp(self) -> StepHandler:
        from steps.mcp import ConnectionConfigError, MCPHandler, MCPSettings

        settings = MCPSettings()
        folder = self.config.definition_dir
        if settings.connections is None and folder is not None and (folder / MCP_CONNECTIONS_FILE).is_file():
            settings = settings.model_copy(update={"connections": str((folder / MCP_CONNECTIONS_FILE).resolve())})
        try:
            return MCPHandler(settings)
        except ConnectionConfigError as exc:
            raise IntegrationUnavailable(str(exc)) from None

    # --- retrieval -----------------------------------------------------------------------------

    async def _retrieval(self) -> StepHandler:
        from steps.retrieval.service import RetrievalHandler
        from steps.retrieval.settings import LOCAL_BASE_URL, EmbeddingsSettings, KnowledgeBaseSettings

        embeddings = EmbeddingsSettings()
        if embeddings.base_url == LOCAL_BASE_URL and self.config.start_offline_servers:
            from infra import local_embeddings

            try:
                server = await asyncio.to_thread(local_embeddings.ensure_up)
            except (local_embeddings.LocalEmbeddingsError, ImportError) as exc:
                raise IntegrationUnavailable(f"the offline embeddings server did not start: {exc}; set "
                                             "BATON_EMBEDDINGS_BASE_URL to an embeddings API") from None
            if server.started_here:
                self.config.notice(f"started the offline embeddings server ({server.base_url}); "
                                   "`baton model down` does not stop it: `python -m infra.local_embeddings down` does")
            embeddings = EmbeddingsSettings(base_url=server.base_url)
        return RetrievalHandler(embeddings, KnowledgeBaseSettings())


class _StreamEveryTask(StepHandler):
    """`--stream`: every `baton:llm` Task streams its answer, whatever its `Stream` field says."""

    def __init__(self, inner: StepHandler) -> None:
        self.inner = inner

    async def run(self, command: StepCommand) -> Any:
        if isinstance(command.parameters, dict) and command.resource.startswith("baton:llm"):
            command = command.model_copy(update={"parameters": {**command.parameters, "Stream": True}})
        return await self.inner.run(command)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def prompt_store_names(definition: Any) -> set[str]:
    """The prompt stores a definition's static `PromptRef`/`SystemRef` values name ("default" for
    a reference without a store)."""
    from steps.llm.errors import PromptError
    from steps.llm.prompts import DEFAULT_STORE, PromptRef

    names: set[str] = set()
    for key, value in _fields(definition):
        if key in ("PromptRef", "SystemRef") and isinstance(value, str):
            try:
                names.add(PromptRef.parse(value).store)
            except PromptError:
                continue  # the LLM step reports it, with the state's name, when it runs
        elif key in ("PromptRef.$", "SystemRef.$"):
            names.add(DEFAULT_STORE)
    return names


def _fields(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _fields(item)
