"""AWS Signature Version 4 over plain HTTP requests: what the prompt store's S3 reads and writes
and the payload store's S3 objects share (one implementation), so neither needs botocore."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit


def sigv4_headers(method: str, url: str, *, region: str, service: str, access_key: str, secret_key: str,
                  session_token: str | None = None, payload: bytes = b"",
                  headers: dict[str, str] | None = None, now: datetime | None = None) -> dict[str, str]:
    """The headers that sign a request with AWS Signature Version 4 (a single-chunk payload).

    Returns the given headers plus host, x-amz-date, x-amz-content-sha256, the session token if
    any, and Authorization. The URL's path must already be URI-encoded (S3 does not double-encode).
    """
    parts = urlsplit(url)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {key.lower(): value.strip() for key, value in (headers or {}).items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = hashlib.sha256(payload).hexdigest()
    if session_token:
        signed["x-amz-security-token"] = session_token
    names = sorted(signed)
    query = "&".join(sorted(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, _, v in (pair.partition("=") for pair in parts.query.split("&") if pair)))
    canonical = "\n".join([method, parts.path or "/", query,
                           "".join(f"{name}:{signed[name]}\n" for name in names),
                           ";".join(names), signed["x-amz-content-sha256"]])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    result = {name: signed[name] for name in names if name != "host"}  # httpx sets Host itself
    result["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                               f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return result
