"""Which SDK step answers a Task resource, with what payload, and how its result is shaped.

Pure functions shared by the local runner and the `fn` step service, so a definition behaves the
same in `execute --local` and on Kafka. Which step service (and so which command topic) runs a
resource is `schemas.resources.service_for`.

Lambda compatibility ([lambda] Step Functions developer guide, "Invoke an AWS Lambda function with
Step Functions"): `arn:aws:states:::lambda:invoke` takes `FunctionName` and `Payload` and returns
the Invoke API response (ExecutedVersion, Payload, SdkHttpMetadata, StatusCode, ...), whereas a
plain Lambda ARN returns the function's result as is.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from schemas import resources

@dataclass(frozen=True)
class FunctionCall:
    """An invocation of an SDK step: its name, its input, and whether to wrap the output."""

    name: str
    payload: Any
    wrap_lambda_invoke: bool  # `arn:aws:states:::lambda:invoke`: answer with the Invoke response
    lambda_resource: bool  # a Lambda resource (either form): a missing function is a task failure


def resolve_call(resource: str, parameters: Any) -> FunctionCall:
    """The step function a Task resource calls and the payload it receives.

    `baton:fn:NAME` and plain Lambda ARNs call NAME with the Task's parameters;
    `arn:aws:states:::lambda:invoke` calls the function named by `FunctionName` (a name or an ARN)
    with its `Payload`. Any other resource resolves to an empty name (no step answers it).
    """
    parsed = resources.parse_resource(resource)
    is_lambda = parsed.service == "lambda"
    if is_lambda and parsed.action == "invoke":
        params = parameters if isinstance(parameters, dict) else {}
        name = resources.lambda_function_name(str(params.get("FunctionName", "")))
        return FunctionCall(name, lambda_payload(params.get("Payload")), True, True)
    return FunctionCall(parsed.function_name or "", parameters, False, is_lambda)


def shape_result(call: FunctionCall, result: Any, request_id: str | None = None) -> Any:
    """The Task's result for a step's output: as is, or wrapped in the Lambda Invoke response."""
    if not call.wrap_lambda_invoke:
        return result
    return lambda_invoke_output(result, request_id or str(uuid.uuid4()))


def lambda_payload(payload: Any) -> Any:
    """Lambda receives the Payload's bytes: a string is sent as is and read back as JSON."""
    if payload is None:
        return {}
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def lambda_invoke_output(result: Any, request_id: str) -> dict[str, Any]:
    """The response shape of the `arn:aws:states:::lambda:invoke` integration."""
    body = json.dumps(result)
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(len(body)),
        "Content-Type": "application/json",
        "X-Amz-Executed-Version": "$LATEST",
    }
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": result,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {k: [v] for k, v in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200,
    }
