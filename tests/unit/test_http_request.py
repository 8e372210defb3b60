"""The HTTP Task's Parameters: validation, URL-encoding, and merging with a connection ([https])."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from steps.http.connections import InvocationParameters, SecretValue
from steps.http.encoding import flatten, url_encode
from steps.http.errors import InvalidParameters
from steps.http.request import FORBIDDEN_HEADERS, parse_call, prepare

BASE = {"ApiEndpoint": "https://api.example.com/v1/customers", "Method": "GET"}


def params(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


# --- URL-encoding ([https] "Applying URL-encoding on request body") ------------------------------

ARRAY = {"array": ["a", "b", "c", "d"]}


@pytest.mark.parametrize(("array_format", "expected"), [
    ("INDICES", "array[0]=a&array[1]=b&array[2]=c&array[3]=d"),
    ("REPEAT", "array=a&array=b&array=c&array=d"),
    ("COMMAS", "array=a,b,c,d"),
    ("BRACKETS", "array[]=a&array[]=b&array[]=c&array[]=d"),
])
def test_array_formats_match_the_aws_examples(array_format: Any, expected: str) -> None:
    assert "&".join(f"{k}={v}" for k, v in flatten(ARRAY, array_format)) == expected


def test_the_aws_stripe_example_encodes_byte_for_byte() -> None:
    body = {"description": "Monthly subscription", "metadata": {"order_details": "monthly report data"},
            "customer": "1234567890"}
    assert url_encode(body) == (
        "description=Monthly%20subscription&metadata%5Border_details%5D=monthly%20report%20data"
        "&customer=1234567890")


def test_url_encoding_of_scalars_nesting_and_commas() -> None:
    assert url_encode({"t": True, "n": None, "x": 1.5, "e": [], "o": {}}) == "t=true&n=&x=1.5"
    # A comma inside an item is encoded, so COMMAS' own separators stay unambiguous.
    assert url_encode({"a": ["x,y", "z"]}, "COMMAS") == "a=x%2Cy,z"
    # Arrays of objects keep their items apart with indices whatever the format.
    assert url_encode({"a": [{"b": 1}]}, "REPEAT") == "a%5B0%5D%5Bb%5D=1"


# --- Parameters -----------------------------------------------------------------------------------


def test_a_minimal_call() -> None:
    call = parse_call(params())
    request = prepare(call)
    assert (request.method, request.url, request.content) == ("GET", "https://api.example.com/v1/customers", None)
    assert ("User-Agent", "Baton|HttpInvoke") in request.headers
    assert call.connection is None


@pytest.mark.parametrize("field", ["InvocationConfig", "Authentication"])
def test_the_connection_comes_from_either_field(field: str) -> None:
    arn = "arn:aws:events:us-east-2:123456789012:connection/Stripe/81210c42"
    assert parse_call(params(**{field: {"ConnectionArn": arn}})).connection == arn


def test_two_different_connections_are_refused() -> None:
    with pytest.raises(InvalidParameters, match="different connections"):
        parse_call(params(InvocationConfig={"ConnectionArn": "a"}, Authentication={"ConnectionArn": "b"}))


@pytest.mark.parametrize(("fields", "message"), [
    ({"ApiEndpoint": None}, "ApiEndpoint must be"),
    ({"ApiEndpoint": "ftp://example.com/x"}, "http:// or https://"),
    ({"ApiEndpoint": "/relative"}, "http:// or https://"),
    ({"Method": "TRACE"}, "Method must be one of GET, POST"),
    ({"Headers": {"Authorization": "Bearer x"}}, "not allowed"),
    ({"Headers": {"X-Amz-Date": "x"}}, "not allowed"),
    ({"Headers": {"x-forwarded-for": "1.2.3.4"}}, "not allowed"),
    ({"Headers": {"X-A": {"nested": 1}}}, "must be text"),
    ({"Headers": {"bad name": "x"}}, "not a valid header name"),
    ({"Headers": {"X-A": "a\r\nInjected: 1"}}, "line break"),
    ({"Transform": {"RequestBodyEncoding": "GZIP"}}, "NONE or URL_ENCODED"),
    ({"Transform": {"RequestBodyEncoding": "URL_ENCODED", "RequestEncodingOptions": {"ArrayFormat": "X"}}},
     "INDICES, REPEAT, COMMAS, BRACKETS"),
    ({"InvocationConfig": {"Arn": "x"}}, "ConnectionArn"),
])
def test_bad_parameters_fail_with_states_runtime(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameters, match=message) as caught:
        parse_call(params(**fields))
    assert caught.value.error == "States.Runtime"


def test_every_forbidden_header_of_the_aws_list_is_refused() -> None:
    for name in sorted(FORBIDDEN_HEADERS):
        with pytest.raises(InvalidParameters):
            parse_call(params(Headers={name.title(): "x"}))


def test_headers_in_every_accepted_shape() -> None:
    expected = [("X-A", "1"), ("X-B", "two"), ("X-B", "three")]
    shapes = [
        {"X-A": 1, "X-B": ["two", "three"]},
        [{"Key": "X-A", "Value": 1}, {"Key": "X-B", "Value": "two"}, {"Key": "X-B", "Value": "three"}],
        "X-A: 1\nX-B: two\r\nX-B: three",
    ]
    for shape in shapes:
        assert parse_call(params(Headers=shape)).headers == expected


def test_query_parameters_append_to_the_endpoints_own_query() -> None:
    call = parse_call(params(ApiEndpoint="https://api.example.com/search?q=a b&page=1",
                             QueryParameters={"currency": "usd", "tag": ["x", "y"], "f": {"k": "v"}}))
    url = prepare(call).url
    assert urlsplit(url).path == "/search"
    assert parse_qsl(urlsplit(url).query) == [
        ("q", "a b"), ("page", "1"), ("currency", "usd"), ("tag", "x"), ("tag", "y"), ("f[k]", "v")]
    assert parse_call(params(QueryParameters="a=1&b=2")).query == [("a", "1"), ("b", "2")]
    assert parse_call(params(QueryParameters=[{"Key": "a", "Value": 1}])).query == [("a", "1")]


def test_json_body_is_compact_and_typed() -> None:
    request = prepare(parse_call(params(Method="POST", RequestBody={"Job": "Software Engineer", "n": 1})))
    assert request.content == b'{"Job":"Software Engineer","n":1}'
    assert ("Content-Type", "application/json; charset=UTF-8") in request.headers


def test_a_string_body_is_sent_as_it_is_with_the_tasks_content_type() -> None:
    request = prepare(parse_call(params(Method="PUT", RequestBody="<a/>", Headers={"Content-Type": "text/xml"})))
    assert request.content == b"<a/>"
    assert [v for k, v in request.headers if k.lower() == "content-type"] == ["text/xml"]


def test_url_encoded_body_gets_the_form_content_type() -> None:
    request = prepare(parse_call(params(
        Method="POST", RequestBody={"tags": ["a", "b"]},
        Transform={"RequestBodyEncoding": "URL_ENCODED", "RequestEncodingOptions": {"ArrayFormat": "BRACKETS"}})))
    assert request.content == b"tags%5B%5D=a&tags%5B%5D=b"
    assert ("Content-Type", "application/x-www-form-urlencoded") in request.headers


# --- merging with the connection ([https] "Merging EventBridge connection and HTTP Task ...") ---


def test_the_aws_merge_example() -> None:
    """The connection's values win over the Task's for headers, query parameters and body."""
    call = parse_call({
        "ApiEndpoint": "https://example.com/path", "Method": "POST",
        "Headers": {"Request-Id": "my_request_id", "Header-Param": "state_machine_header_param"},
        "RequestBody": {"Job": "Software Engineer", "Company": "AnyCompany", "BodyParam": "state_machine_body_param"},
        "QueryParameters": {"QueryParam": "state_machine_query_param"}})
    invocation = InvocationParameters(headers={"header-param": "connection_header_param"},
                                      query={"QueryParam": "connection_query_param"},
                                      body={"BodyParam": "connection_body_param"})
    request = prepare(call, invocation)
    assert request.url == "https://example.com/path?QueryParam=connection_query_param"
    headers = {k.lower(): v for k, v in request.headers}
    assert headers["header-param"] == "connection_header_param"
    assert headers["request-id"] == "my_request_id"
    assert json.loads(request.content or b"") == {
        "Job": "Software Engineer", "Company": "AnyCompany", "BodyParam": "connection_body_param"}


def test_a_string_body_cannot_merge_with_connection_body_fields() -> None:
    call = parse_call(params(Method="POST", RequestBody="raw"))
    with pytest.raises(InvalidParameters, match="cannot be merged") as caught:
        prepare(call, InvocationParameters(body={"k": "v"}))
    assert caught.value.error == "States.Runtime"


def test_connection_body_fields_alone_make_the_body_of_a_post_but_not_of_a_get() -> None:
    invocation = InvocationParameters(body={"k": SecretValue(secret="s3cr3t-value")})  # type: ignore[arg-type]
    assert prepare(parse_call(params(Method="POST")), invocation).content == b'{"k":"s3cr3t-value"}'
    assert prepare(parse_call(params(Method="GET")), invocation).content is None
