"""The pure Amazon States Language core: parse, validate, evaluate, decide. No I/O, no clock, no asyncio."""

from orchestrator.asl.decider import Environment, decide, new_execution
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.model import StateMachine, load_document, parse_definition

__all__ = ["DefinitionError", "Environment", "StateMachine", "decide", "load_document", "new_execution",
           "parse_definition"]
