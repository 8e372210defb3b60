"""Definitions in request bodies, checked before anything is run or published.

A definition is measured against its quota first (413, so a huge one is not validated at all),
then validated: 400 with every problem and its JSON path.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.api.errors import ApiError, invalid_definition
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.model import StateMachine, load_document, parse_definition
from orchestrator.quotas import check_definition
from orchestrator.settings import Quotas


class DefinitionRequest(BaseModel):
    definition: Any = Field(..., description="An ASL definition: a JSON object, or JSON/YAML text.")


def parse_machine(definition: Any, quotas: Quotas) -> StateMachine:
    """A valid definition within its quota, or 400 with every problem and its JSON path (413 when
    it is too large: checked first, so a huge definition is not validated at all)."""
    if isinstance(definition, str):
        try:
            definition = load_document(definition)
        except RecursionError:  # YAML text nests without limit (a JSON body's depth is checked before parsing)
            raise ApiError(400, "InvalidDefinition", "the definition nests too deeply") from None
        except ValueError as exc:
            raise ApiError(400, "InvalidDefinition", str(exc)) from None
    check_definition(definition, quotas)
    try:
        return parse_definition(definition if isinstance(definition, (str, dict)) else json.dumps(definition))
    except RecursionError:  # YAML text nests without limit (a JSON body's depth is checked before parsing)
        raise ApiError(400, "InvalidDefinition", "the definition nests too deeply") from None
    except DefinitionError as exc:
        raise invalid_definition([{"path": p.path, "message": p.message} for p in exc.problems]) from None
    except ValueError as exc:
        raise ApiError(400, "InvalidDefinition", str(exc)) from None


def definition_object(definition: Any, quotas: Quotas) -> dict[str, Any]:
    """A deployable definition: validated (400 with each fault's JSON path), as a JSON object."""
    parse_machine(definition, quotas)
    loaded = load_document(definition) if isinstance(definition, str) else definition
    if not isinstance(loaded, dict):
        raise ApiError(400, "InvalidDefinition", "a definition is a JSON object with StartAt and States")
    return loaded
