"""Task resources: Baton's own URIs and the AWS ARNs of the same meaning, and the step service
that runs each.

`baton:llm`, `baton:http`, `baton:review`, `baton:fn:NAME`, each optionally suffixed with
`.sync` (run a job) or `.waitForTaskToken` (callback); `arn:aws:states:::SERVICE:ACTION[.suffix]`
(optimised integrations such as `lambda:invoke`, `http:invoke`, `bedrock:invokeModel`);
plain Lambda function ARNs `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`; and
activity ARNs. `service_for` names the step service (and so the command topic,
`Topics.commands(service)`) a resource's commands go to: the decider's effects and the step
services agree on it through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CALLBACK", "REQUEST_RESPONSE", "SYNC", "Resource", "lambda_function_name", "parse_resource",
           "service_for"]

REQUEST_RESPONSE = "request-response"
SYNC = "sync"
CALLBACK = "callback"

# Resources of the step services other than `fn`, by parsed service name (baton:X or AWS ARN).
_BATON_SERVICES = {"llm": "llm", "http": "http", "review": "review", "retrieve": "retrieval"}
_AWS_INTEGRATIONS = {("bedrock", "invokeModel"): "llm", ("http", "invoke"): "http",
                     ("aws-sdk", "bedrockruntime:converse"): "llm"}


@dataclass(frozen=True)
class Resource:
    """A Task's Resource string, classified: its service, action and integration pattern."""

    uri: str
    base: str  # the URI without its integration-pattern suffix
    pattern: str
    service: str  # "lambda", "fn", "llm", "http", "review", "bedrock", "activity", ...
    action: str  # "invoke", a function name, ...
    function_name: str | None = None  # for Lambda-style and baton:fn resources

    @property
    def history_prefix(self) -> str:
        """Step Functions names task history events after the kind of resource."""
        if self.service == "lambda" and self.action == "function":
            return "LambdaFunction"
        if self.service == "activity":
            return "Activity"
        return "Task"

    @property
    def resource_type(self) -> str:
        return self.service

    @property
    def resource_name(self) -> str:
        suffix = {SYNC: ".sync", CALLBACK: ".waitForTaskToken"}.get(self.pattern, "")
        return self.action + suffix


def parse_resource(uri: str) -> Resource:
    """Classify a Task's Resource string; never fails (unknown shapes are kept as opaque services)."""
    base, pattern = uri, REQUEST_RESPONSE
    if base.endswith(".waitForTaskToken"):
        base, pattern = base[: -len(".waitForTaskToken")], CALLBACK
    elif base.endswith(".sync:2"):
        base, pattern = base[: -len(".sync:2")], SYNC
    elif base.endswith(".sync"):
        base, pattern = base[: -len(".sync")], SYNC
    parts = base.split(":")
    if parts[0] == "baton" and len(parts) >= 2:
        if parts[1] == "fn" and len(parts) >= 3:
            name = ":".join(parts[2:])
            return Resource(uri, base, pattern, "fn", name, function_name=name)
        return Resource(uri, base, pattern, parts[1], ":".join(parts[2:]) or parts[1])
    if parts[0] == "arn" and len(parts) >= 6:
        service = parts[2]
        if service == "states" and parts[3] == "" and parts[4] == "":
            # arn:aws:states:::lambda:invoke -> service "lambda", action "invoke"
            return Resource(uri, base, pattern, parts[5], ":".join(parts[6:]) or parts[5])
        if service == "lambda" and parts[5] == "function" and len(parts) >= 7:
            return Resource(uri, base, pattern, "lambda", "function", function_name=parts[6])
        if service == "states" and parts[5] == "activity":
            return Resource(uri, base, pattern, "activity", ":".join(parts[6:]))
    return Resource(uri, base, pattern, parts[0], ":".join(parts[1:]))


def lambda_function_name(function_name: str) -> str:
    """The bare name from a Lambda FunctionName parameter (name, partial or full ARN, with qualifier)."""
    parts = function_name.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0]


def service_for(resource: str) -> str:
    """The step service that runs a Task resource (its commands go to `Topics.commands(service)`).

    `baton:fn:*`, Lambda ARNs and `lambda:invoke` -> "fn"; `baton:llm` and `bedrock:invokeModel`
    -> "llm"; `baton:http` and `http:invoke` -> "http"; `baton:review` -> "review"; any other
    `baton:SVC` -> SVC; anything else -> "fn" (which fails it as a function it does not know).
    """
    parsed = parse_resource(resource)
    if parsed.base.startswith("baton:"):
        return _BATON_SERVICES.get(parsed.service, parsed.service) or "fn"
    return _AWS_INTEGRATIONS.get((parsed.service, parsed.action), "fn")
