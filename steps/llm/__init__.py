"""The LLM step service (`baton step llm`): `baton:llm` and `arn:aws:states:::bedrock:invokeModel`.

Parameters, configuration, errors, streaming and metrics are documented in steps/llm/README.md.
Modules, one concern each: `task` (the Task Parameters), `config` (providers, credentials, routes,
prices, prompt stores), `providers` (OpenAI-compatible, Anthropic, Hugging Face over httpx),
`prompts` (sandboxed Jinja2 templates, pinned references, stores), `streaming` (baton.streams),
`metrics`, `errors` (the Baton.LLM.* ASL errors) and `service` (the handler and the step service).
"""

from steps.llm.config import LLMSettings, load_settings
from steps.llm.errors import ERROR_NAMES, LLMError
from steps.llm.handler import LLMHandler
from steps.llm.service import llm_service

__all__ = ["ERROR_NAMES", "LLMError", "LLMHandler", "LLMSettings", "llm_service", "load_settings"]
