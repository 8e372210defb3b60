"""The studio's API and page routes on the real broker: reading a prompt, saving a new version
(a new registry version and a new prompt file; the old ones unchanged), and what is refused:
403 for a viewer's save, 400 for an invalid edited definition, 404 for an unknown state machine.
No model is called here (tests/e2e/test_studio_page.py tests states on the offline model)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.api.auth import TokenAuthorizer, TokenStore
from steps.inprocess import LocalIntegrations, LocalIntegrationsConfig

STORY = Path(__file__).resolve().parents[2] / "examples" / "genai" / "story"


def story_copy(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The story demo in a folder of the test's own, so saving writes no prompt into the repository."""
    folder = tmp_path / "story"
    shutil.copytree(STORY, folder, ignore=shutil.ignore_patterns("eval"))
    return folder, json.loads((folder / "definition.json").read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.j2"))}


@pytest.fixture
def studio(kafka: KafkaSettings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Path, dict[str, Any]]]:
    folder, definition = story_copy(tmp_path)
    store = TokenStore(tmp_path / "api-tokens.json")
    tokens = {role: store.create(f"{role}-1", role) for role in ("viewer", "operator")}
    integrations = LocalIntegrations(LocalIntegrationsConfig(definition=definition, definition_dir=folder,
                                                             start_offline_servers=False))
    app = create_app(kafka, db_path=tmp_path / "read.db", authorizer=TokenAuthorizer(store), integrations=integrations)
    with TestClient(app) as client:
        yield client, {role: f"Bearer {token}" for role, token in tokens.items()}, folder, definition


def test_save_publishes_a_version_and_a_prompt_version(
        studio: tuple[TestClient, dict[str, str], Path, dict[str, Any]]) -> None:
    client, auth, folder, definition = studio
    operator, viewer = {"Authorization": auth["operator"]}, {"Authorization": auth["viewer"]}
    deployed = client.post("/api/state-machines", json={"name": "story", "definition": definition}, headers=operator)
    assert deployed.status_code == 201, deployed.text

    prompt = client.get("/api/studio/prompts", params={"ref": "story:outline@v1"}, headers=viewer)
    assert prompt.status_code == 200, prompt.text
    assert prompt.json()["text"] == (folder / "prompts" / "outline" / "v1.j2").read_text()
    assert client.get("/api/studio/prompts", params={"ref": "story:outline@v99"}, headers=viewer).status_code == 404
    assert client.get("/api/studio/prompts", params={"ref": "not a ref"}, headers=viewer).status_code == 400

    edited = copy.deepcopy(definition)
    edited["States"]["Outline"]["Parameters"].update({"Model": "smollm2", "Temperature": 0.3, "MaxTokens": 80})
    new_text = "Outline a story about {{ topic }} in two chapters. <b>&</b>\n"
    body = {"name": "story", "definition": edited, "prompts": [{"state": "Outline", "text": new_text}],
            "description": "the cheap model"}
    before = snapshot(folder)

    refused = client.post("/api/studio/save", json=body, headers=viewer)
    assert refused.status_code == 403, refused.text
    assert snapshot(folder) == before  # a viewer's save wrote nothing

    saved = client.post("/api/studio/save", json=body, headers=operator)
    assert saved.status_code == 201, saved.text
    answer = saved.json()
    numbers = [int(Path(name).stem[1:]) for name in before if name.startswith("prompts/outline/")]
    new_ref = f"story:outline@v{max(numbers) + 1}"
    assert answer["version"] == 2 and answer["changed"] is True
    assert answer["prompts"] == [{"state": "Outline", "from": "story:outline@v1", "ref": new_ref}]
    written = folder / "prompts" / "outline" / f"{new_ref.rsplit('@', 1)[1]}.j2"
    assert written.read_text() == new_text
    assert {name: data for name, data in snapshot(folder).items() if name in before} == before  # old prompts unchanged

    record = client.get("/api/state-machines/story", headers=viewer).json()
    versions = {v["version"]: v["definition"] for v in record["versions"]}
    assert versions[1] == definition  # the old version unchanged
    parameters = versions[2]["States"]["Outline"]["Parameters"]
    assert parameters["PromptRef"] == new_ref and parameters["Model"] == "smollm2"
    assert parameters["Temperature"] == 0.3 and parameters["MaxTokens"] == 80
    assert client.get("/api/studio/prompts", params={"ref": new_ref}, headers=viewer).json()["text"] == new_text

    # The page: the graph and the opened version; Save offered to the operator only.
    page = client.get("/studio/story", headers=operator)
    assert page.status_code == 200 and 'data-state="Outline"' in page.text and "version 2" in page.text
    assert '"may_save": true' in page.text and "<b>&</b>" not in page.text  # the prompt's HTML is escaped
    assert '"may_save": false' in client.get("/studio/story?version=1", headers=viewer).text
    assert 'href="/studio/story"' in client.get("/studio", headers=viewer).text


def test_what_save_refuses(studio: tuple[TestClient, dict[str, str], Path, dict[str, Any]]) -> None:
    client, auth, folder, definition = studio
    operator = {"Authorization": auth["operator"]}
    assert client.post("/api/state-machines", json={"name": "story", "definition": definition},
                       headers=operator).status_code == 201
    before = snapshot(folder)

    def save(edited: dict[str, Any], name: str = "story", text: str = "Hello {{ topic }}") -> Any:
        return client.post("/api/studio/save", json={"name": name, "definition": edited,
                                                     "prompts": [{"state": "Outline", "text": text}]}, headers=operator)

    broken = copy.deepcopy(definition)
    broken["States"]["Outline"]["Next"] = "Nowhere"
    answer = save(broken)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidDefinition", answer.text

    too_hot = copy.deepcopy(definition)
    too_hot["States"]["Outline"]["Parameters"]["Temperature"] = 5
    answer = save(too_hot)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"]["problems"][0]["path"] == "$.States.Outline.Parameters"
    assert "Temperature" in answer.json()["error"]["message"]

    nested = copy.deepcopy(definition)  # a nested state is checked too
    nested["States"]["DraftChapters"]["ItemProcessor"]["States"]["DraftChapter"]["Parameters"]["MaxTokens"] = 0
    answer = save(nested)
    assert answer.status_code == 400 and "DraftChapter" in answer.json()["error"]["details"]["problems"][0]["path"]

    answer = save(definition, text="{% for x in %}")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidPrompt", answer.text

    answer = save(definition, name="no-such-machine")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "StateMachineNotFound", answer.text

    assert snapshot(folder) == before  # nothing refused wrote a prompt
    record = client.get("/api/state-machines/story", headers=operator).json()
    assert [v["version"] for v in record["versions"]] == [1]

    assert client.get("/studio/no-such-machine", headers=operator).status_code == 404
    assert client.get("/studio/story?version=7", headers=operator).status_code == 404


def test_what_compare_refuses(studio: tuple[TestClient, dict[str, str], Path, dict[str, Any]]) -> None:
    client, auth, _, definition = studio
    viewer = {"Authorization": auth["viewer"]}
    base = {"definition": definition, "state": "Outline", "dataset": '{"input": {"topic": "a cat"}}',
            "variants": [{"name": "a"}, {"name": "b", "model": "smollm2"}]}

    def compare(**changes: Any) -> Any:
        return client.post("/api/studio/evals", json={**base, **changes}, headers=viewer)

    for changes, words in [({"state": "DraftChapters"}, "not a baton:llm Task"),
                           ({"state": "Nowhere"}, "no state named 'Nowhere'"),
                           ({"variants": [{"name": "bad name!"}]}, "bad name!"),
                           ({"variants": [{"name": "hot", "temperature": 9}]}, "temperature"),
                           ({"scorers": [{"kind": "astrology"}]}, "unknown scorer"),
                           ({"dataset": "not json\n"}, "no usable dataset line")]:
        answer = compare(**changes)
        assert answer.status_code == 400, (changes, answer.text)
        assert answer.json()["error"]["code"] == "InvalidEval" and words in answer.json()["error"]["message"], answer.text
    assert compare(variants=[{"name": f"v{i}"} for i in range(5)]).status_code == 400  # at most 4 variants
