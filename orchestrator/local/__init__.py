"""The in-process runner: a whole execution (`run_execution`) or one state (`run_test_state`,
AWS's TestState) with the same decider as the Kafka runtime; tasks are answered by a mock config,
results given per state, SDK steps, or the built-in integrations (`Integrations`)."""

from orchestrator.local.mock_config import MockedResponse, parse_mock_config
from orchestrator.local.runner import ExecutionResult, Integrations, LocalRunError, TaskResolver, run_execution
from orchestrator.local.test_state import GivenOutcome, run_test_state, task_inspection

__all__ = [
    "ExecutionResult", "GivenOutcome", "Integrations", "LocalRunError", "MockedResponse", "TaskResolver",
    "parse_mock_config", "run_execution", "run_test_state", "task_inspection",
]
