"""The root of Baton's errors: every exception Baton raises on purpose derives from `BatonError`.

Catch `BatonError` for "anything Baton refused or could not do", or one family below for exactly
what you mean. A class keeps its built-in base too (an `InvalidToken` is still a `ValueError`), so
code that catches the built-in keeps working. Each family lives with the code that raises it:

    BatonError
    ├── schemas.tokens.InvalidToken               a task token that is malformed or forged (ValueError)
    ├── kafka_io.errors.KafkaFailure              Kafka cannot be reached, refused a record, lacks a topic
    ├── orchestrator.asl.errors.StatesError       a runtime error with an ASL name (Retry/Catch match it)
    ├── orchestrator.asl.errors.DefinitionError   a definition refused, every fault with its JSON path
    ├── orchestrator.quotas.QuotaExceeded         an input or definition over its quota (ValueError)
    ├── orchestrator.registry.errors.RegistryError  the state machine registry's refusals
    ├── orchestrator.api.readmodel.ReadModelError   the read model (SQLite projection) cannot answer
    ├── orchestrator.client.InvalidName, StateMachineNotFound, WaitTimedOut   the client's refusals
    ├── orchestrator.client.callbacks.DecisionRefused, orchestrator.cli.control.CommandError, ...
    ├── orchestrator.runtime.engine.Rejected, Oversized   an input dead-lettered; a record too big
    ├── steps.sdk.step.StepFailed, StepError      a step's failure as the ASL error it becomes
    ├── steps.service.StepServiceError, steps.llm.errors.LLMError, steps.retrieval.errors.RetrievalError, ...
    └── infra.processes.LauncherError, infra.local_kafka.LocalKafkaError   the development stack (RuntimeError)
"""

from __future__ import annotations


class BatonError(Exception):
    """Something Baton refused or could not do; the message says what, where, and what to do."""
