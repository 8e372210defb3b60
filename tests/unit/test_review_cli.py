"""`baton review`: mistakes and an unreachable broker give one line and exit 2, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from schemas.tokens import TokenSigner

SECRET = "0123456789abcdef-secret"
TOKEN = TokenSigner(SECRET.encode()).sign("arn:baton:states:local:execution:m:a", "t")
FORGED = TokenSigner(b"not-the-orchestrators-secret").sign("arn:baton:states:local:execution:m:a", "t")
DOWN = ["--bootstrap", "127.0.0.1:1"]  # nothing listens on port 1


@pytest.fixture(autouse=True)
def orchestrators_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands check a token's signature with the orchestrators' secret, as it is configured."""
    monkeypatch.setenv("BATON_TOKEN_SECRET", SECRET)


@pytest.mark.parametrize(("args", "message"), [
    (["approve", "not-a-token"], "the task token is malformed"),
    (["reject", "abc.def"], "the task token is malformed"),
    (["approve", TOKEN, "--output", "[1, 2]"], "must be a JSON object"),
    (["edit", TOKEN, "--output", "{oops"], "--output is not valid JSON"),
    (["reject", TOKEN, "--error", " "], "needs an error name"),
    (["list", *DOWN], "cannot reach Kafka at 127.0.0.1:1"),
    (["approve", TOKEN, *DOWN], "cannot reach Kafka at 127.0.0.1:1"),
    (["heartbeat", TOKEN, "--no-check", *DOWN], "cannot reach Kafka at 127.0.0.1:1"),
    (["approve", FORGED, *DOWN], "the task token is not valid"),  # refused before Kafka is asked
    (["approve", TOKEN, "--output", '{"big": "' + "x" * 300_000 + '"}', *DOWN], "over the payload quota"),
    (["approve", TOKEN, "--output", "[" * 200 + "]" * 200, *DOWN], "more than 128 levels deep"),
])
def test_errors_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["review", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_edit_needs_the_edited_output() -> None:
    result = CliRunner().invoke(main, ["review", "edit", TOKEN])
    assert result.exit_code == 2 and "--output" in result.output
