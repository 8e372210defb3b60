"""Step Functions Local's mock configuration (MockConfigFile), read into typed models.

    {"StateMachines": {"Machine": {"TestCases": {"Happy": {"StateName": "ResponseName"}}}},
     "MockedResponses": {"ResponseName": {"0": {"Return": {...}}, "1-2": {"Throw": {"Error": "E", "Cause": "C"}}}}}

Keys of a mocked response are the invocation numbers of that state (0 = first try, then each
retry), singly or as an inclusive range "1-2".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MockThrow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    error: str = Field(alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class MockAttempt(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    returns: Any = Field(default=None, alias="Return")
    throw: MockThrow | None = Field(default=None, alias="Throw")

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("Return" in data) == ("Throw" in data):
            raise ValueError("a mocked response attempt needs exactly one of Return or Throw")
        return data


class MockedResponse(BaseModel):
    attempts: list[tuple[int, int, MockAttempt]]

    def for_attempt(self, attempt: int) -> MockAttempt | None:
        for low, high, response in self.attempts:
            if low <= attempt <= high:
                return response
        return None


class TestCase(BaseModel):
    states: dict[str, str]  # state name -> mocked response name


class MockConfig(BaseModel):
    state_machines: dict[str, dict[str, TestCase]]
    responses: dict[str, MockedResponse]

    def test_case(self, machine: str | None, test_case: str) -> dict[str, MockedResponse]:
        """The mocked responses by state name for one test case; KeyError with a readable message."""
        if machine is None:
            if len(self.state_machines) != 1:
                raise KeyError(
                    f"the mock config has state machines {sorted(self.state_machines)}; "
                    "name one with --state-machine"
                )
            machine = next(iter(self.state_machines))
        if machine not in self.state_machines:
            raise KeyError(f"state machine {machine!r} is not in the mock config")
        cases = self.state_machines[machine]
        if test_case not in cases:
            raise KeyError(f"test case {test_case!r} is not in the mock config for {machine!r}")
        out: dict[str, MockedResponse] = {}
        for state, response_name in cases[test_case].states.items():
            if response_name not in self.responses:
                raise KeyError(f"mocked response {response_name!r} (state {state!r}) is not defined")
            out[state] = self.responses[response_name]
        return out


def _attempt_range(key: str) -> tuple[int, int]:
    low, _, high = key.partition("-")
    return int(low), int(high or low)


def parse_mock_config(document: Any) -> MockConfig:
    """Validate a decoded MockConfigFile; ValueError with the location of the fault."""
    if not isinstance(document, dict):
        raise ValueError("a mock config must be a JSON object")
    machines: dict[str, dict[str, TestCase]] = {}
    for machine, body in (document.get("StateMachines") or {}).items():
        cases = (body or {}).get("TestCases") or {}
        machines[machine] = {name: TestCase(states=dict(states)) for name, states in cases.items()}
    responses: dict[str, MockedResponse] = {}
    for name, attempts in (document.get("MockedResponses") or {}).items():
        parsed = []
        for key, value in attempts.items():
            try:
                low, high = _attempt_range(key)
                parsed.append((low, high, MockAttempt.model_validate(value)))
            except ValueError as exc:
                raise ValueError(f"MockedResponses.{name}.{key}: {exc}") from None
        responses[name] = MockedResponse(attempts=parsed)
    return MockConfig(state_machines=machines, responses=responses)
