"""The studio: open a registered state machine (a version, or the one an execution ran), click a
state, edit an LLM Task (model, provider, prompt reference, the prompt text, temperature, max
tokens), test it, compare variants on a dataset, and save a new version.

- `GET /studio`, `/studio?execution=ID`, `/studio/{name}?version=N&execution=ID`: the page.
- `GET /api/studio/prompts?ref=REF`: a prompt's text, read from the store TestState reads it from.
- Test is `POST /api/test-state` with the edited definition (the page's own call). A prompt text
  edited but not saved is tested by sending it as the state's inline `Prompt` in place of its
  `PromptRef` (the LLM step renders either the same way), so nothing is written to test it.
- `POST /api/studio/save` (operator): checks the edited definition (ASL, and each LLM Task's
  Parameters as the LLM step parses them), publishes each edited prompt text as the next free
  version of its prompt in the prompt store and points the state's PromptRef at it, then deploys
  and publishes the definition as the state machine's next version (as `POST /api/state-machines`
  does). Recorded executions keep the definition they ran (pinned by hash): nothing changes there.
- `POST /api/studio/evals` (viewer, as TestState): Compare. Runs `orchestrator.evaluation.evaluate`
  on one state of the edited definition over a typed JSONL dataset (the first `MAX_EVAL_ITEMS`
  items) for up to `MAX_EVAL_VARIANTS` variants, through the app's in-process integrations, and
  answers the per-variant summaries and every answer; the run is not kept on disk.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from kafka_io import kafka_errors
from orchestrator.api.backend import backend_of
from orchestrator.api.checks import DefinitionRequest, definition_object, parse_machine
from orchestrator.api.errors import ApiError, invalid_definition
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.roles import may, requires
from orchestrator.api.routers.pages import page
from orchestrator.api.studio_edits import llm_problems, llm_states, prompt_ref_of, with_prompt_ref
from orchestrator.graph import to_svg
from schemas.registry import StateMachineRecord
from steps.inprocess import IntegrationUnavailable
from steps.llm.errors import PromptError
from steps.llm.prompts import PromptLibrary, PromptRef

router = APIRouter(route_class=GuardedRoute)
viewer, operator = requires("viewer"), requires("operator")

MAX_PROMPT_CHARS = 200_000  # the LLM step's default max_prompt_chars: a longer template cannot render anyway
# Compare runs items x variants model calls (twice with a judge) while the request waits: kept small.
MAX_EVAL_ITEMS = 20
MAX_EVAL_VARIANTS = 4
EVAL_CONCURRENCY = 2


class PromptEdit(BaseModel):
    state: str = Field(..., description="The baton:llm Task whose PromptRef gets the new prompt version.")
    text: str = Field(..., max_length=MAX_PROMPT_CHARS, description="The edited prompt template (Jinja2).")


class SaveRequest(DefinitionRequest):
    name: str = Field(..., description="The registered state machine to publish a new version of.")
    description: str | None = Field(None, description="A description of the new version.")
    prompts: list[PromptEdit] = Field(default_factory=list, max_length=50,
                                      description="Edited prompt texts: each becomes a new prompt version.")


class VariantRequest(BaseModel):
    name: str
    model: str | None = None
    provider: str | None = None
    prompt_ref: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


class EvalRequest(DefinitionRequest):
    state: str = Field(..., description="The baton:llm Task to compare variants of.")
    dataset: str = Field(..., max_length=512 * 1024,
                         description=f"JSONL: one {{input, expected?, id?, rubric?}} per line; the first "
                                     f"{MAX_EVAL_ITEMS} items are run.")
    variants: list[VariantRequest] = Field(..., min_length=1, max_length=MAX_EVAL_VARIANTS)
    scorers: list[dict[str, Any]] = Field(default_factory=list, max_length=8,
                                          description="As a variants file's scorers: (default: exact when "
                                                      "the dataset has expected outputs).")
    judge: dict[str, Any] | None = Field(None, description="{model, rubric?}: an LLM judge scores each answer.")


# ------------------------------------------------------------ the page


@router.get("/studio", response_class=HTMLResponse, dependencies=[viewer], include_in_schema=False)
async def studio_index(request: Request, execution: str | None = None) -> Response:
    """The registered state machines to open, or (with `execution`) the state machine it ran."""
    if execution is not None:
        try:
            view = backend_of(request).describe(execution)
        except ApiError as exc:
            return page("error.html", status_code=exc.status, message=exc.message)
        query = {"execution": view.execution_id, **({"version": view.version} if view.version else {})}
        return RedirectResponse(f"/studio/{quote(view.state_machine, safe='')}?{urlencode(query)}", status_code=303)
    records = await _registry(request)
    return page("studio.html", index=sorted(records.values(), key=lambda r: r.name))


@router.get("/studio/{name}", response_class=HTMLResponse, dependencies=[viewer], include_in_schema=False)
async def studio_page(name: str, request: Request, version: int | None = None,
                      execution: str | None = None) -> HTMLResponse:
    try:
        opened = await _open(request, name, version, execution)
    except ApiError as exc:
        return page("error.html", status_code=exc.status, message=exc.message)
    machine = parse_machine(opened["definition"], request.app.state.quotas)
    opened["may_save"] = opened["registered"] and await may(request, "operator")
    return page("studio.html", studio=opened, graph=to_svg(machine), data=_script_json(opened))


async def _open(request: Request, name: str, version: int | None, execution: str | None) -> dict[str, Any]:
    """What the page opens: a version (`version`, else the one `execution` ran, else the newest),
    or the definition an execution ran when it is not registered (shown, not savable)."""
    from orchestrator.registry.errors import NotFound
    from orchestrator.registry.model import find_version

    backend = backend_of(request)
    pinned = None
    if execution is not None:
        view = backend.describe(execution)
        execution = view.execution_id
        version = version if version is not None else view.version
        pinned = backend.definitions.by_execution.get(execution) if view.state_machine == name else None
    record = (await _registry(request)).get(name)
    if record is None and pinned is None:
        raise ApiError(404, "StateMachineNotFound", f"no state machine named {name!r} is registered")
    definition: Any
    if version is not None and record is not None:
        try:
            definition = find_version(record, version).definition
        except NotFound as exc:  # UnknownVersion
            raise ApiError(404, "StateMachineNotFound", str(exc)) from None
    elif pinned is not None:
        definition = pinned
    else:
        assert record is not None
        newest = record.versions[-1] if record.versions else None
        version, definition = (newest.version, newest.definition) if newest else (None, record.definition)
    return {"name": name, "registered": record is not None, "version": version, "execution": execution,
            "versions": [v.version for v in record.versions] if record else [],
            "definition": definition, "llm_states": llm_states(definition)}


def _script_json(value: Any) -> str:
    """JSON for a `<script type="application/json">`: `<`, `>` and `&` escaped, so a prompt or a
    state name holding `</script>` cannot end the element (the template marks it safe)."""
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ------------------------------------------------------------ prompts and save


@router.get("/api/studio/prompts", dependencies=[viewer], tags=["studio"])
async def read_prompt(ref: str, request: Request) -> dict[str, Any]:
    """A prompt template's text by reference (`[store:]name@version`), from the prompt store the
    API's TestState reads: 400 for a malformed reference, 404 when the store has no such prompt."""
    try:
        parsed = PromptRef.parse(ref)
    except PromptError as exc:
        raise ApiError(400, "InvalidPromptRef", exc.cause) from None
    library = await _prompt_library(request)
    try:
        loaded = await library.load(ref)
    except PromptError as exc:
        raise ApiError(404, "PromptNotFound", exc.cause) from None
    return {"ref": str(parsed), "store": parsed.store, "name": parsed.name, "version": parsed.version,
            "text": loaded.source, "sha256": loaded.sha256}


@router.post("/api/studio/save", status_code=201, dependencies=[operator], tags=["studio"])
async def save(body: SaveRequest, request: Request, response: Response) -> dict[str, Any]:
    """Publish the edited definition as the state machine's next version, each edited prompt text
    as its prompt's next version first. 400 for an invalid definition, LLM Parameters or
    template (nothing is written), 404 for an unknown state machine, 403 below operator."""
    from orchestrator.registry.model import require
    from orchestrator.registry.writer import RegistryWriter

    quotas = request.app.state.quotas
    definition = definition_object(body.definition, quotas)
    problems = llm_problems(definition)
    if problems:
        raise invalid_definition(problems)
    refs: dict[str, str] = {}
    for edit in body.prompts:
        ref, why = prompt_ref_of(definition, edit.state)
        if ref is None:
            raise ApiError(400, "PromptNotEditable", str(why))
        refs[edit.state] = ref
    require(await _registry(request), body.name)  # 404 before anything is written
    library = await _prompt_library(request) if body.prompts else None
    for edit in body.prompts:  # every template must compile before the first one is written
        assert library is not None
        _check_template(library, edit)
    published = []
    for edit in body.prompts:
        assert library is not None
        old = PromptRef.parse(refs[edit.state])
        try:
            new = await library.publish(old.store, old.name, edit.text, after=old.version)
        except PromptError as exc:
            raise ApiError(503, "PromptStoreUnavailable", exc.cause) from None
        definition = with_prompt_ref(definition, edit.state, str(new))
        published.append({"state": edit.state, "from": str(old), "ref": str(new)})
    definition = definition_object(definition, quotas)
    backend = backend_of(request)
    with kafka_errors(backend.settings):
        deployed = await RegistryWriter(backend.settings, quotas=quotas).deploy(
            body.name, definition, description=body.description, publish=True)
    if not deployed.changed:
        response.status_code = 200
    return {"name": body.name, "version": deployed.version.version if deployed.version else None,
            "changed": deployed.changed, "prompts": published, "definition": definition}


def _check_template(library: PromptLibrary, edit: PromptEdit) -> None:
    import jinja2

    try:
        library.env.parse(edit.text)
    except jinja2.TemplateSyntaxError as exc:
        raise ApiError(400, "InvalidPrompt", f"the prompt of {edit.state!r}, line {exc.lineno}: {exc.message}") from None


async def _prompt_library(request: Request) -> PromptLibrary:
    """The prompt stores of the app's in-process LLM handler: the ones TestState renders from, so
    a prompt the studio publishes is the one the next test loads."""
    try:
        handler = await request.app.state.integrations.handler_for("llm")
    except IntegrationUnavailable as exc:
        raise ApiError(503, "IntegrationUnavailable", str(exc)) from None
    library = getattr(handler, "prompts", None)
    if not isinstance(library, PromptLibrary):
        raise ApiError(503, "IntegrationUnavailable", "the API's LLM integration has no prompt stores")
    return library


async def _registry(request: Request) -> dict[str, StateMachineRecord]:
    from orchestrator.registry.store import read_registry

    backend = backend_of(request)
    with kafka_errors(backend.settings):
        return await read_registry(backend.settings)


# ------------------------------------------------------------ Compare


@router.post("/api/studio/evals", dependencies=[viewer], tags=["studio"])
async def compare(body: EvalRequest, request: Request) -> dict[str, Any]:
    """Compare variants of one LLM state on a small dataset: per variant score, latency, tokens
    and cost, and each item's answer per variant. 400 for a bad definition, dataset, variant or
    scorer (a variant the LLM configuration does not know is skipped and reported in `problems`)."""
    import tempfile
    from pathlib import Path

    from orchestrator.evaluation import EvalConfig, EvalError, evaluate, parse_dataset
    from orchestrator.evaluation.config import parse_judge
    from orchestrator.evaluation.scorers import parse_scorer
    from orchestrator.evaluation.variants import apply_variant, parse_variant_entry

    definition = definition_object(body.definition, request.app.state.quotas)
    try:
        variants = [parse_variant_entry({k: v for k, v in entry.model_dump().items() if v is not None},
                                        f"variant {index + 1}") for index, entry in enumerate(body.variants)]
        for variant in variants:
            apply_variant(definition, body.state, variant)  # the state exists and is an LLM Task
        scorers = [parse_scorer(entry, f"scorer {index + 1}") for index, entry in enumerate(body.scorers)]
        judge = parse_judge(body.judge, "judge")
        items, _ = parse_dataset(body.dataset, "dataset")
    except EvalError as exc:
        raise ApiError(400, "InvalidEval", str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="baton-studio-eval-") as folder:
        dataset = Path(folder) / "dataset.jsonl"  # evaluate reads its dataset from a file
        dataset.write_text(body.dataset, encoding="utf-8")
        config = EvalConfig(definition_file="studio", dataset_file=str(dataset), definition=definition,
                            state=body.state, variants=variants, scorers=scorers, judge=judge,
                            concurrency=EVAL_CONCURRENCY, limit=MAX_EVAL_ITEMS)
        try:
            report = await evaluate(config, keep=False, integrations=request.app.state.integrations)
        except IntegrationUnavailable as exc:
            raise ApiError(503, "IntegrationUnavailable", str(exc)) from None
        except EvalError as exc:
            raise ApiError(400, "InvalidEval", str(exc)) from None
    answers = ("variant", "item_id", "status", "error", "cause", "text", "output", "score", "latency_ms",
               "input_tokens", "output_tokens", "cost_usd")
    return {"summaries": report.summaries, "problems": report.problems, "seconds": report.seconds,
            "items": [{"id": item.id, "input": item.input, "expected": item.expected} for item in report.items],
            "truncated": max(0, len(items) - MAX_EVAL_ITEMS),
            "records": [{key: getattr(record, key) for key in answers} for record in report.records]}
