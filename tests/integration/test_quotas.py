"""Quotas where data enters, on the real broker: the API (uvicorn + httpx) and the CLI (`baton start`,
`baton deploy`) refuse an input or definition over its quota (413 / one line, nothing published),
bound request bodies in size and depth, store a 10,000-state machine's second version, and answer
a record Kafka refuses by size with 413 / one line, never "Kafka unavailable" (docs/limits.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from click.testing import CliRunner

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.cli import main
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings, Quotas
from schemas.base import decode
from schemas.executions import StartExecution
from tests.integration.runtime_support import eventually, read_all
from tests.integration.test_api import free_port, until_status

QUOTAS = Quotas()
PAYLOAD = QUOTAS.max_payload_bytes
DEFINITION = QUOTAS.max_definition_bytes
ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}
SMALL_TOPIC = 256 * 1024  # max.message.bytes of a topic whose broker takes smaller records
# An operator who raised the request cap, so a definition over its own quota can be sent at all
# (at AWS's defaults the 1 MB request cap always answers first).
ROOMY = Quotas(max_request_bytes=4 * 1024 * 1024)


def sized(size: int) -> dict[str, str]:
    """An input whose compact JSON is exactly `size` bytes (as the decider measures)."""
    padding = size - len('{"data":""}')
    return {"data": "x" * padding}


def nested(depth: int) -> Any:
    """A JSON value `depth` levels deep (arrays)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def chain(states: int, tag: str) -> dict[str, Any]:
    """A machine of `states` Pass states in a row (~53 bytes each: 10,000 are ~530 KB)."""
    body: dict[str, dict[str, Any]] = {f"S{i}": {"Type": "Pass", "Result": tag, "Next": f"S{i + 1}"} for i in range(states - 1)}
    body[f"S{states - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": body}


def noisy(size: int, seed: int = 1) -> str:
    """Text that barely compresses (gzip keeps ~82% of it)."""
    rnd = random.Random(seed)
    return "".join(rnd.choice(string.ascii_letters + string.digits + "!#%&()*+,-./:;<=>?@[]^_{|}~")
                   for _ in range(size))


def noisy_definition(size: int) -> dict[str, Any]:
    """A valid definition of about `size` bytes that compresses badly."""
    return {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": noisy(size), "End": True}}}


def size_of(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@contextlib.asynccontextmanager
async def apis(kafka: KafkaSettings, tmp_path: Path, *quotas: Quotas) -> AsyncIterator[list[httpx.AsyncClient]]:
    """The orchestrator and one API per `quotas` (each its own read model); a client for each."""
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop))
    servers = []
    for index, limits in enumerate(quotas):
        app = create_app(kafka, db_path=tmp_path / f"rm{index}.sqlite", quotas=limits)
        servers.append(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                                     log_level="critical", lifespan="on")))
    serving = [asyncio.create_task(server.serve()) for server in servers]
    try:
        async with contextlib.AsyncExitStack() as stack:
            await asyncio.wait_for(orchestrator.ready.wait(), 30)

            async def started() -> bool:
                return all(server.started for server in servers)

            await eventually(started, timeout=30)
            clients = [await stack.enter_async_context(httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.config.port}", timeout=60)) for server in servers]
            yield clients
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.wait_for(asyncio.gather(*serving), 30)
        stop.set()
        await asyncio.wait_for(task, 30)


async def limit_topic(kafka: KafkaSettings, topic: str, max_message_bytes: int) -> None:
    """Lower a topic's max.message.bytes (as a broker configured for smaller records would have it)."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"max.message.bytes": str(max_message_bytes)})])
    finally:
        await admin.close()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The API's JSON error shape with this status and code; the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and set(error) <= {"code", "message", "details"}, error
    return error


async def started_names(kafka: KafkaSettings) -> set[str]:
    records = await read_all(kafka, kafka.topics.start)
    return {decode(StartExecution, r.value).name for r in records if b'"kind":"start"' in r.value}


def test_the_api_applies_the_quotas_at_the_door(kafka: KafkaSettings, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with apis(kafka, tmp_path, QUOTAS, ROOMY) as (api, roomy):
            async def start(name: str, execution_input: Any, client: httpx.AsyncClient = api,
                            definition: Any = ECHO) -> httpx.Response:
                return await client.post("/api/executions", json={"definition": definition, "name": name,
                                                                   "input": execution_input})

            # The payload quota, measured as the decider does: under and at it run, one byte more is 413.
            for name, size in (("under", PAYLOAD - 1), ("at", PAYLOAD)):
                response = await start(name, sized(size))
                assert response.status_code == 201, response.text
            error = refused(await start("over", sized(PAYLOAD + 1)), 413, "PayloadTooLarge")
            assert error["details"] == {"size": PAYLOAD + 1, "limit": PAYLOAD}
            assert "BATON_MAX_PAYLOAD_BYTES" in error["message"]
            for name in ("under", "at"):
                done = await until_status(api, name, "SUCCEEDED", "FAILED")
                assert done["status"] == "SUCCEEDED" and size_of(done["output"]) <= PAYLOAD, done["error"]

            # 600 KB of input: 413 (it was 201, then the orchestrator crashed).
            refused(await start("six-hundred", sized(600_000)), 413, "PayloadTooLarge")
            # 2 MB bodies: over AWS's 1 MB request quota (it was 503 KafkaUnavailable), by their
            # Content-Length, and streamed without one (chunked), read only up to the cap.
            body = json.dumps({"definition": ECHO, "name": "two-mb", "input": sized(2_000_000)}).encode()
            refused(await api.post("/api/executions", content=body,
                                    headers={"content-type": "application/json"}), 413, "RequestTooLarge")

            async def chunks() -> AsyncIterator[bytes]:
                for offset in range(0, len(body), 64 * 1024):
                    yield body[offset:offset + 64 * 1024]

            refused(await api.post("/api/executions", content=chunks(),
                                   headers={"content-type": "application/json"}), 413, "RequestTooLarge")
            # With the cap raised, the same input meets the payload quota instead.
            refused(await start("two-mb", sized(2_000_000), roomy), 413, "PayloadTooLarge")

            # Depth: the body's own object is a level, so an input 127 deep is 128: allowed.
            assert (await start("deep-ok", nested(QUOTAS.max_json_depth - 1))).status_code == 201
            for depth in (QUOTAS.max_json_depth, 300):  # 129 and 301 with the body: 400 (300 was a text 500)
                error = refused(await start(f"deep-{depth}", nested(depth)), 400, "JsonTooDeep")
                assert f"more than {QUOTAS.max_json_depth} levels" in error["message"]
            refused(await api.post("/api/validate", json={"definition": nested(300)}), 400, "JsonTooDeep")

            # The definition quota, on every route that takes one (through the roomy API).
            over = noisy_definition(DEFINITION)
            assert size_of(over) > DEFINITION
            routes = [("/api/executions", {"definition": over, "name": "big-definition"}),
                      ("/api/state-machines", {"definition": over, "name": "Huge"}),
                      ("/api/validate", {"definition": over}),
                      ("/api/test-state", {"definition": over, "state": "P"}),
                      ("/api/state-machines", {"definition": json.dumps(over), "name": "HugeText"})]
            for path, request in routes:
                error = refused(await roomy.post(path, json=request), 413, "DefinitionTooLarge")
                assert "BATON_MAX_DEFINITION_BYTES" in error["message"] and error["details"]["limit"] == DEFINITION
            refused(await roomy.post("/api/test-state", json={"definition": ECHO, "state": "Echo",
                                                             "input": sized(PAYLOAD + 1)}), 413, "PayloadTooLarge")

            # A start record the broker refuses by size (its topic takes 256 KiB; the definition is
            # within its quota but does not compress): 413 RecordTooLarge, not 503 KafkaUnavailable.
            await limit_topic(kafka, kafka.topics.start, SMALL_TOPIC)
            response = await start("incompressible", {}, definition=noisy_definition(2 * SMALL_TOPIC))
            assert "too large" in refused(response, 413, "RecordTooLarge")["message"]

            names = await started_names(kafka)
            assert {"under", "at", "deep-ok"} <= names
            assert not names & {"over", "six-hundred", "two-mb", "deep-128", "deep-300", "big-definition",
                                "incompressible"}

    asyncio.run(scenario())


def test_the_registry_stores_a_large_second_version_or_refuses_with_413(kafka: KafkaSettings, tmp_path: Path) -> None:
    """A 10,000-state machine's second version was 503 KafkaUnavailable (the registry record, which
    holds the draft and every version, went over aiokafka's 1 MiB check before compression)."""

    async def scenario() -> None:
        async with apis(kafka, tmp_path, QUOTAS) as (api,):
            for version, tag in ((1, "v1"), (2, "v2")):
                response = await api.post("/api/state-machines", json={"name": "Big", "definition": chain(10_000, tag)})
                assert response.status_code == 201, response.text
                assert response.json()["version"] == version
            record = (await api.get("/api/state-machines/Big")).json()
            assert [v["version"] for v in record["versions"]] == [1, 2]
            assert len(record["versions"][1]["definition"]["States"]) == 10_000
            assert record["versions"][1]["definition"]["States"]["S0"]["Result"] == "v2"

            # A definition within its quota whose record cannot fit the topic even compressed (it
            # holds the draft and the version: twice ~1 MB of noise): 413 naming the limit.
            response = await api.post("/api/state-machines", json={"name": "Noise",
                                                                    "definition": noisy_definition(1_000_000)})
            error = refused(response, 413, "RegistryRecordTooLarge")
            assert "max.message.bytes" in error["message"] and "nothing was stored" in error["message"]
            assert (await api.get("/api/state-machines/Noise")).status_code == 404

    asyncio.run(scenario())


def test_an_unexpected_failure_is_a_json_500(kafka: KafkaSettings, tmp_path: Path) -> None:
    """A bug in a route answers 500 in the API's JSON error shape, never Starlette's plain text."""

    async def scenario() -> None:
        app = create_app(kafka, db_path=tmp_path / "rm.sqlite")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport,
                                                                       base_url="http://api") as client:
            def broken(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("a bug")

            app.state.backend.model.list = broken
            error = refused(await client.get("/api/executions"), 500, "InternalError")
            assert "a bug" not in error["message"]  # the log has it; the answer names the class only

    asyncio.run(scenario())


# ------------------------------------------------------------------------ the CLI


def baton(kafka: KafkaSettings, *args: str) -> tuple[int, str]:
    """`baton ARGS` against the test's topics, in process; (exit code, output)."""
    where = ["--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix]
    result = CliRunner().invoke(main, [*args, *where])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_baton_start_and_deploy_apply_the_quotas(kafka: KafkaSettings, tmp_path: Path) -> None:
    def write(name: str, value: Any) -> str:
        path = tmp_path / name
        path.write_text(json.dumps(value))
        return str(path)

    echo = write("echo.json", ECHO)
    for name, size in (("under", PAYLOAD - 1), ("at", PAYLOAD)):
        code, output = baton(kafka, "start", echo, "--name", name, "--input", "@" + write(f"{name}.json", sized(size)))
        assert code == 0 and output.strip().endswith(f":echo:{name}"), output
    code, output = baton(kafka, "start", echo, "--name", "over", "--input", "@" + write("over.json", sized(PAYLOAD + 1)))
    line = one_line_error(output)
    assert code == 2 and "over the payload quota" in line and "BATON_MAX_PAYLOAD_BYTES" in line
    assert "nothing was started" in line
    code, output = baton(kafka, "start", echo, "--name", "deep", "--input", json.dumps(nested(300)))
    assert code == 2 and "more than 128 levels deep" in one_line_error(output)
    code, output = baton(kafka, "start", write("huge.json", noisy_definition(DEFINITION)), "--name", "huge")
    assert code == 2 and "over the definition quota" in one_line_error(output)

    # A start record the broker refuses by size (its topic takes 256 KiB; the definition is within
    # its quota but does not compress).
    asyncio.run(limit_topic(kafka, kafka.topics.start, SMALL_TOPIC))
    code, output = baton(kafka, "start", write("noise.json", noisy_definition(2 * SMALL_TOPIC)), "--name", "noise")
    line = one_line_error(output)
    assert code == 2 and "too large" in line and "cannot reach" not in line and "unavailable" not in line
    assert asyncio.run(started_names(kafka)) == {"under", "at"}

    # The registry: over the definition quota refused; a 10,000-state second version stored;
    # a record over the topic's limit refused in one line naming it.
    code, output = baton(kafka, "deploy", write("huge.json", noisy_definition(DEFINITION)), "--name", "Huge")
    assert code == 2 and "over the definition quota" in one_line_error(output)
    for version, tag in ((1, "v1"), (2, "v2")):
        code, output = baton(kafka, "deploy", write(f"big-{tag}.json", chain(10_000, tag)), "--name", "Big",
                             "--publish")
        assert code == 0 and output.strip().endswith(f"version {version}"), output
    code, output = baton(kafka, "versions", "Big", "--json")
    assert code == 0 and [v["version"] for v in json.loads(output)] == [1, 2]
    code, output = baton(kafka, "deploy", write("noise.json", noisy_definition(1_000_000)), "--name", "Noise",
                         "--publish")
    line = one_line_error(output)
    assert code == 2 and "max.message.bytes" in line and "unavailable" not in line
