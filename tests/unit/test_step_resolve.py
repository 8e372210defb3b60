"""`steps.sdk.resolve`: which step answers a resource, with what payload, and on which service.

- [lambda] Step Functions developer guide, "Invoke an AWS Lambda function with Step Functions":
  `arn:aws:states:::lambda:invoke` takes FunctionName (name, partial or full ARN, with qualifier)
  and Payload, and returns the Invoke API response; a plain function ARN returns the result as is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.resources import service_for
from steps.sdk.resolve import FunctionCall, lambda_payload, resolve_call, shape_result

INVOKE = "arn:aws:states:::lambda:invoke"


class TestResolveCall:
    def test_baton_fn_calls_the_named_step_with_the_parameters(self) -> None:
        assert resolve_call("baton:fn:add", {"a": 1}) == FunctionCall("add", {"a": 1}, False, False)

    def test_integration_suffixes_do_not_change_the_name(self) -> None:
        assert resolve_call("baton:fn:add.sync", 1).name == "add"
        assert resolve_call("baton:fn:add.waitForTaskToken", 1).name == "add"

    def test_a_plain_lambda_arn_calls_the_function_unwrapped(self) -> None:
        call = resolve_call("arn:aws:lambda:us-east-1:123456789012:function:add:PROD", [1, 2])
        assert call == FunctionCall("add", [1, 2], False, True)

    @pytest.mark.parametrize("function_name", [
        "add", "add:PROD", "123456789012:function:add",
        "arn:aws:lambda:us-east-1:123456789012:function:add",
        "arn:aws:lambda:us-east-1:123456789012:function:add:$LATEST",
    ])
    def test_lambda_invoke_reads_function_name_and_payload(self, function_name: str) -> None:
        call = resolve_call(INVOKE, {"FunctionName": function_name, "Payload": {"x": 1}})
        assert call == FunctionCall("add", {"x": 1}, True, True)

    def test_lambda_invoke_sync_suffix_wraps_too(self) -> None:
        assert resolve_call(INVOKE + ".waitForTaskToken", {"FunctionName": "f"}).wrap_lambda_invoke

    @pytest.mark.parametrize(("payload", "expected"), [
        (None, {}), ('{"a": [1]}', {"a": [1]}), ("not json", "not json"), ("7", 7), ([1], [1]),
    ])
    def test_lambda_payload_strings_are_read_as_json(self, payload: Any, expected: Any) -> None:
        assert resolve_call(INVOKE, {"FunctionName": "f", "Payload": payload}).payload == expected
        assert lambda_payload(payload) == expected

    def test_lambda_invoke_without_parameters_has_no_name(self) -> None:
        assert resolve_call(INVOKE, None) == FunctionCall("", {}, True, True)

    def test_other_resources_resolve_to_no_function(self) -> None:
        assert resolve_call("baton:llm", {"p": 1}) == FunctionCall("", {"p": 1}, False, False)


class TestShapeResult:
    def test_unwrapped_results_pass_through(self) -> None:
        assert shape_result(resolve_call("baton:fn:f", None), {"r": 1}) == {"r": 1}

    def test_lambda_invoke_output_has_the_invoke_response_shape(self) -> None:
        shaped = shape_result(resolve_call(INVOKE, {"FunctionName": "f"}), {"r": 1}, request_id="req-1")
        assert shaped["Payload"] == {"r": 1}
        assert shaped["StatusCode"] == 200
        assert shaped["ExecutedVersion"] == "$LATEST"
        assert shaped["SdkResponseMetadata"] == {"RequestId": "req-1"}
        headers = shaped["SdkHttpMetadata"]["HttpHeaders"]
        assert headers["Content-Length"] == str(len(json.dumps({"r": 1})))
        assert shaped["SdkHttpMetadata"]["AllHttpHeaders"]["Content-Type"] == ["application/json"]

    def test_the_whole_invoke_response(self) -> None:
        shaped = shape_result(resolve_call(INVOKE, {"FunctionName": "f"}), [1, "a"], request_id="r")
        headers = {"Connection": "keep-alive", "Content-Length": "8", "Content-Type": "application/json",
                   "X-Amz-Executed-Version": "$LATEST"}
        assert shaped == {
            "ExecutedVersion": "$LATEST",
            "Payload": [1, "a"],
            "SdkHttpMetadata": {"AllHttpHeaders": {k: [v] for k, v in headers.items()},
                                "HttpHeaders": headers, "HttpStatusCode": 200},
            "SdkResponseMetadata": {"RequestId": "r"},
            "StatusCode": 200,
        }

    def test_request_ids_are_fresh_by_default(self) -> None:
        call = resolve_call(INVOKE, {"FunctionName": "f"})
        first, second = shape_result(call, 1), shape_result(call, 1)
        assert first["SdkResponseMetadata"]["RequestId"] != second["SdkResponseMetadata"]["RequestId"]


class TestServiceFor:
    @pytest.mark.parametrize(("resource", "service"), [
        ("baton:fn:summarise", "fn"),
        ("baton:fn:summarise.sync", "fn"),
        ("arn:aws:lambda:us-east-1:123456789012:function:summarise", "fn"),
        (INVOKE, "fn"),
        (INVOKE + ".waitForTaskToken", "fn"),
        ("baton:llm", "llm"),
        ("baton:llm.waitForTaskToken", "llm"),
        ("arn:aws:states:::bedrock:invokeModel", "llm"),
        ("baton:http", "http"),
        ("arn:aws:states:::http:invoke", "http"),
        ("baton:review", "review"),
        ("baton:review.waitForTaskToken", "review"),
        ("baton:retrieval", "retrieval"),
        ("baton:retrieval:search", "retrieval"),
        ("arn:aws:states:::sqs:sendMessage", "fn"),
        ("arn:aws:states:us-east-1:123456789012:activity:approve", "fn"),
        ("something-else", "fn"),
        ("baton:", "fn"),
    ])
    def test_maps_resources_to_services(self, resource: str, service: str) -> None:
        assert service_for(resource) == service
