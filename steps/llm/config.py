"""The LLM service's configuration: providers, credentials, model routes, prices, prompt stores.

Configured once per deployment, never in a definition, so secrets stay out of the history:

- a YAML or JSON file named by `config_file` (env `BATON_LLM_CONFIG_FILE`, or `--config`), and
- the environment, which wins over the file: `BATON_LLM_<FIELD>`, nested with `__`, e.g.
  `BATON_LLM_PROVIDERS__OPENAI__API_KEY=sk-...` or `BATON_LLM_DEFAULT_PROVIDER=openai`.

A provider's key is `api_key` (from the environment, as above) or `api_key_env`, the name of a
variable that holds it (e.g. `OPENAI_API_KEY`), so the file itself holds no secret. Example:

    providers:
      local:      {kind: openai, base_url: "http://127.0.0.1:8090/v1"}
      openrouter: {kind: openai, base_url: "https://openrouter.ai/api/v1", api_key_env: OPENROUTER_API_KEY}
      anthropic:  {kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_API_KEY}
      hf:         {kind: huggingface, base_url: "http://127.0.0.1:8080"}
    models:                     # route by model name: a Task that names only Model goes here
      smollm2:   {provider: local}
      claude:    {provider: anthropic, model: claude-3-5-haiku-latest}
    default_provider: local
    prices:                     # USD per million tokens, by "provider/model" or "model"
      claude: {input_per_million: 0.8, output_per_million: 4}
    prompt_stores:              # PromptRef "name@v3" uses "default"; "team:name@v3" uses "team"
      default: {url: ./prompts}
      team:    {url: "s3://prompts/team", endpoint_url: "http://127.0.0.1:9000"}
    cache:                      # opt-in response cache, for iterating on a workflow (off by default)
      enabled: true             # env: BATON_LLM_CACHE__ENABLED=true
      ttl_seconds: 86400
      path: .baton/llm-cache    # default: $BATON_STATE_DIR/llm-cache, else .baton/llm-cache

The response cache (`cache.py`) answers a deterministic call (Temperature 0, or a Seed on a
provider that honours one) that was answered before with the same provider, model, rendered
prompt and sampling parameters, without calling the provider: re-running a workflow while editing
a later state does not pay for the earlier states again. It is off by default, also on the
runtime: turn it on where answers may be reused (development, evaluation), not where a fresh
answer is expected on every call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.errors import BatonError
from steps.llm.flow import FlowControlSettings

ProviderKind = Literal["openai", "anthropic", "huggingface"]

LOCAL_BASE_URL = "http://127.0.0.1:8090/v1"  # `baton model up`'s first server (infra/local_model.py)


class ConfigError(BatonError, ValueError):
    """The configuration cannot be used; the message names the file or field and the fix."""


class ProviderConfig(BaseModel):
    """One provider endpoint and how to call it (one pooled HTTP client each)."""

    model_config = ConfigDict(extra="forbid")

    kind: ProviderKind = "openai"
    # openai: the API root that /chat/completions is under (".../v1"); anthropic: the host
    # (/v1/messages is appended); huggingface: the URL to POST to, "{model}" replaced.
    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None  # the name of an environment variable holding the key
    headers: dict[str, str] = {}  # extra request headers (e.g. OpenRouter's X-Title)
    timeout_seconds: float = Field(default=120.0, gt=0)  # the whole call, first byte to last
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=60.0, gt=0)  # the longest silence between bytes
    max_connections: int = Field(default=20, ge=1)
    max_keepalive_connections: int = Field(default=10, ge=0)
    # Use the provider's streaming API for every call, so time to first token is measured even
    # when the Task does not stream; turn off for a server that cannot stream.
    stream: bool = True
    anthropic_version: str = "2023-06-01"
    # How Tools reach the model: `native` (the API's own tool calling), or `constrained` for a
    # small model whose native tool calling is unreliable: one JSON answer, either text or a call,
    # constrained by a JSON Schema the server turns into a grammar (steps/llm/tools.py).
    tool_calling: Literal["native", "constrained"] = "native"

    def key(self) -> str | None:
        """The API key: `api_key`, else the variable `api_key_env` names; None if neither is set."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ConfigError(f"the environment variable {self.api_key_env} (api_key_env) is not set")
            return value
        return None


class ModelRoute(BaseModel):
    """Where a model name is served: the provider, and the provider's own name for the model."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str | None = None  # default: the route's name


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(default=0.0, ge=0)
    output_per_million: float = Field(default=0.0, ge=0)

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        total = (input_tokens or 0) * self.input_per_million + (output_tokens or 0) * self.output_per_million
        return round(total / 1_000_000, 10)


class PromptStoreConfig(BaseModel):
    """Where versioned prompt templates live: `<url>/<name>/<version><suffix>`.

    `url` is a folder (a path or file:// URL), an http(s):// base URL, or `s3://bucket/prefix`
    on any S3-compatible store (`endpoint_url`; credentials from the fields or the standard
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN variables).
    """

    model_config = ConfigDict(extra="forbid")

    url: str
    suffix: str = ".j2"
    timeout_seconds: float = Field(default=10.0, gt=0)
    bearer_token: SecretStr | None = None  # http(s) stores
    bearer_token_env: str | None = None
    endpoint_url: str | None = None  # s3 stores; default https://s3.<region>.amazonaws.com
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    path_style: bool = True  # http://endpoint/bucket/key (MinIO, Ceph, ...); False: bucket.endpoint


def default_cache_path() -> Path:
    """`llm-cache` under the state root: $BATON_STATE_DIR, else `.baton` in the working folder."""
    return Path(os.environ.get("BATON_STATE_DIR") or ".baton") / "llm-cache"


class CacheSettings(BaseModel):
    """The opt-in response cache (`cache.py`): a SQLite file in the `path` folder, shared by every
    process that names the same folder; entries older than `ttl_seconds` are misses and purged."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    ttl_seconds: float = Field(default=86_400.0, gt=0)  # one day
    path: Path = Field(default_factory=default_cache_path)  # a folder; relative: to the working folder


class ResolvedModel(BaseModel):
    """What a Task's Provider/Model resolved to."""

    provider: str  # the provider's configured name
    config: ProviderConfig
    model: str  # the name the Task used (the metrics label)
    upstream_model: str  # the name sent to the provider


class LLMSettings(BaseSettings):
    """Everything the LLM service needs besides Kafka. Env: BATON_LLM_*, file: `config_file`."""

    model_config = SettingsConfigDict(env_prefix="BATON_LLM_", env_nested_delimiter="__", extra="forbid")

    config_file: Path | None = None
    providers: dict[str, ProviderConfig] = {"local": ProviderConfig(base_url=LOCAL_BASE_URL)}
    models: dict[str, ModelRoute] = {}
    default_provider: str | None = None  # for a model with no route; default: the first provider
    default_model: str | None = None  # for a Task that names no Model
    prices: dict[str, Price] = {}
    prompt_stores: dict[str, PromptStoreConfig] = {}
    prompt_cache_size: int = Field(default=256, ge=0)  # pinned templates kept in memory
    max_prompt_chars: int = Field(default=200_000, ge=1)  # a rendered prompt longer than this fails
    # The rendered prompt goes into the result's metadata (and so the history), each text cut to
    # this many characters (its sha256 is always recorded): a result must stay under ASL's 256 KiB.
    record_prompt_chars: int = Field(default=16_384, ge=0)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    # Limits per model and fair shares per tenant across all replicas (steps/llm/flow.py); off while empty.
    flow_control: FlowControlSettings = Field(default_factory=FlowControlSettings)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments win over the environment, which wins over the config file.
        return init_settings, env_settings, _ConfigFileSource(settings_cls)

    @model_validator(mode="after")
    def _check_references(self) -> LLMSettings:
        if not self.providers:
            raise ValueError("no providers are configured")
        if self.default_provider is None:
            self.default_provider = next(iter(self.providers))
        if self.default_provider not in self.providers:
            raise ValueError(f"default_provider {self.default_provider!r} is not among the providers "
                             f"({', '.join(sorted(self.providers)) or 'none'})")
        for name, route in self.models.items():
            if route.provider not in self.providers:
                raise ValueError(f"models.{name}.provider {route.provider!r} is not among the providers "
                                 f"({', '.join(sorted(self.providers))})")
        return self

    def resolve(self, provider: str | None, model: str | None) -> ResolvedModel:
        """The provider and model a Task asks for.

        A Task that names a Provider uses it (with the route's upstream name when the model's route
        points at the same provider); one that names only a Model is routed by `models`, else goes
        to `default_provider`. Raises KeyError naming what is unknown.
        """
        name = model or self.default_model
        if not name:
            raise KeyError("the Task names no Model and no default_model is configured")
        route = self.models.get(name)
        if provider is None:
            provider = route.provider if route is not None else self.default_provider or ""
        if provider not in self.providers:
            raise KeyError(f"unknown Provider {provider!r}; configured: {', '.join(sorted(self.providers))}")
        upstream = route.model if route is not None and route.provider == provider and route.model else name
        return ResolvedModel(provider=provider, config=self.providers[provider], model=name,
                             upstream_model=upstream)

    def price(self, provider: str, model: str) -> Price | None:
        """The price of a model: by "provider/model" first, then by "model"."""
        return self.prices.get(f"{provider}/{model}") or self.prices.get(model)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The YAML/JSON file named by `config_file` (argument or BATON_LLM_CONFIG_FILE)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file

    def __call__(self) -> dict[str, Any]:
        path = self.current_state.get("config_file")
        if not path:
            return {}
        path = Path(path).expanduser()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the LLM config file {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML/JSON: {exc}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
        # A relative prompt folder is relative to the file that names it, not to the cwd.
        for store in (data.get("prompt_stores") or {}).values():
            if isinstance(store, dict) and isinstance(store.get("url"), str) and "://" not in store["url"]:
                store["url"] = str((path.parent / store["url"]).resolve())
        return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> LLMSettings:
    """Settings from `config_file` (else $BATON_LLM_CONFIG_FILE) and the environment.

    Raises ConfigError with one line per problem.
    """
    from pydantic import ValidationError

    if config_file is not None:
        overrides["config_file"] = Path(config_file)
    try:
        return LLMSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid LLM settings: {problems}") from None
