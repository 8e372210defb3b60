"""ASL intrinsic functions (`States.Format(...)` and friends) for JSONPath states.

An intrinsic is parsed once (cached) by a small hand-written recursive-descent parser and then
evaluated against the state input, the context object and the workflow variables. The grammar:

    call     := NAME "(" [ argument { "," argument } ] ")"        NAME = "States." [A-Za-z0-9_]+
    argument := call | path | 'string' | number | true | false | null

Semantics follow what Step Functions does, which is not always what the developer guide says.
Step Functions runs on the JVM and its behaviour shows it; recorded executions on real AWS
(LocalStack's snapshots and the tiny-asl-machine AWS snapshots) establish that:

* every runtime fault of an intrinsic is a `States.Runtime` error (not `States.IntrinsicFailure`),
  with the cause "There was an error while evaluating the intrinsic function: <expr>. Invalid
  arguments in States.<Name>"; a path argument that matches nothing is also `States.Runtime`;
* argument counts and types are checked when the function runs, not when the definition is
  created (`check` is stricter on purpose: it refuses calls that can never succeed);
* values are handled as Java objects: States.Format renders an object as `{a=1, b=[2, 3]}`
  (`String.valueOf`), States.ArrayContains compares those renderings, States.ArrayUnique keeps
  the iteration order of a `java.util.HashSet`, and a seeded States.MathRandom is
  `new java.util.Random(seed).nextInt(end - start) + start`;
* States.MathAdd rounds like `Math.round`, while ArrayRange, ArrayPartition, ArrayGetItem and
  MathRandom truncate fractional numbers toward zero.

The core is deterministic: randomness and UUIDs come only from the injected `rng`/`new_uuid`.
"""

from orchestrator.asl.intrinsics.checks import check
from orchestrator.asl.intrinsics.evaluation import evaluate
from orchestrator.asl.intrinsics.parser import is_intrinsic
from orchestrator.asl.intrinsics.parser import parse as _parse  # the cached parser (its cache is tested)
from orchestrator.asl.intrinsics.syntax import IntrinsicSyntaxError

__all__ = ["IntrinsicSyntaxError", "check", "evaluate", "is_intrinsic"]
