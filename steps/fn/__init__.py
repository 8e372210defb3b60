"""The `fn` step service: runs the SDK step functions of Python modules (`baton step fn --module M`).

It answers `baton:fn:NAME`, plain Lambda ARNs and `arn:aws:states:::lambda:invoke`, exactly as the
local runner does (`steps.sdk.resolve`). Also runs as a FastStream app:
`BATON_FN_MODULES=myapp.steps faststream run --factory steps.fn.service:app` (needs faststream[cli]).
"""

from steps.fn.service import FunctionHandler, app, fn_service

__all__ = ["FunctionHandler", "app", "fn_service"]
