"""Schemathesis hooks for tests/api_fuzz.sh: how to put generated values
into the two request body media types of POST /v1/events, which
schemathesis has no serializer for. Bodies go out as generated (text as
UTF-8, bytes as they are); the server must answer 200, 400 or 413, never
a 5xx."""

import schemathesis


def _as_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return repr(value).encode("utf-8")


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    return _as_bytes(value)


@schemathesis.serializer("application/vnd.apache.arrow.stream")
def arrow_stream(ctx, value):
    return _as_bytes(value)
