"""Static checks of a state machine definition: refuse what AWS Step Functions refuses.

`validate` walks an already-decoded definition and returns every fault it finds, each with the
JSON path of the fault, so a user can fix them all in one go. The rules come from the Amazon
States Language specification (states-language.net) and the Step Functions developer guide;
where the spec leaves a choice to the interpreter, we follow what AWS's CreateStateMachine /
ValidateStateMachineDefinition was observed to refuse (test docstrings cite the source).

Layout, along the spec:
- `tables`: the field tables (which fields each state type allows, which belong to one query
  language, which exclude each other) and the names and limits the checks use;
- `expressions`: JSONPaths, intrinsic calls, payload templates, Assign, JSONata `{% %}` strings;
- `fields`: every other field's value check, and `FIELD_CHECKS`, which field gets which check;
- `flow`: transitions: Next or End, targets within the scope, an end, reachability;
- `state_types`: each state type's checks beyond its field table (Wait, Task, Parallel, Map,
  Choice rules, Retry and Catch);
- `walk`: the walk over machines, scopes and states that applies them all;
- `problems`: JSON paths of faults and the wording shared by the messages.
"""

from orchestrator.asl.validate.expressions import is_jsonata, is_variable_name
from orchestrator.asl.validate.fields import FIELD_CHECKS, is_timestamp
from orchestrator.asl.validate.tables import JSONATA, JSONPATH, QUERY_LANGUAGES, STATE_SPECS, StateSpec
from orchestrator.asl.validate.walk import validate

__all__ = [
    "FIELD_CHECKS",
    "JSONATA",
    "JSONPATH",
    "QUERY_LANGUAGES",
    "STATE_SPECS",
    "StateSpec",
    "is_jsonata",
    "is_timestamp",
    "is_variable_name",
    "validate",
]
