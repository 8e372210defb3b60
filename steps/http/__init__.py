"""The HTTP step service: call third-party APIs from a workflow, as Step Functions' HTTP Task does.

    "Charge": {
      "Type": "Task",
      "Resource": "arn:aws:states:::http:invoke",        (or "baton:http")
      "Parameters": {
        "ApiEndpoint": "https://api.example.com/v1/charges",
        "Method": "POST",
        "InvocationConfig": {"ConnectionArn": "payments"},
        "RequestBody": {"amount.$": "$.amount"}
      },
      "Retry": [{"ErrorEquals": ["States.Http.StatusCode.500", "States.Http.Socket"]}],
      "End": true
    }

The result is `{ResponseBody, Headers, StatusCode, StatusText}`; a non-2xx answer fails the task
with `States.Http.StatusCode.NNN`. Credentials come from named connections (`connections`),
configured once for the service and never written in a definition.

References, cited as [https] in this package: AWS Step Functions developer guide, "Call HTTPS
APIs in Step Functions workflows" (call-https-apis); [errors]: the same guide, "Handling errors
in Step Functions workflows".
"""

from steps.http.connections import Connection, ConnectionRegistry, load_connections
from steps.http.errors import ConnectionConfigError, HttpTaskError
from steps.http.service import HttpHandler, HttpStepService, app, http_service
from steps.http.settings import HttpSettings

__all__ = [
    "Connection",
    "ConnectionConfigError",
    "ConnectionRegistry",
    "HttpHandler",
    "HttpSettings",
    "HttpStepService",
    "HttpTaskError",
    "app",
    "http_service",
    "load_connections",
]
