"""ASGI guards in front of the feedback API: per-client rate limit, bearer token, request size limit."""
import hmac
import json
import time
from collections import OrderedDict

TOKEN_ENV = "LORAFLOW_FEEDBACK_TOKEN"


async def _send_json(send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class TokenBuckets:
    """One token bucket per client: `rate` tokens/s refill up to `burst`; a request spends one token."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000):
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_time(self, client: str, now: float | None = None) -> float:
        """Spend a token for `client`; returns 0.0 if allowed, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        # Forget the longest-idle clients so a flood of addresses cannot grow memory without bound.
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self.rate


class RateLimitMiddleware:
    """429 with Retry-After when a client (by address) exceeds its token bucket; /healthz is exempt."""

    def __init__(self, app, rate: float, burst: int):
        self.app = app
        # The buckets live in the event loop's thread only, so they need no lock.
        self.buckets = TokenBuckets(rate, burst)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/healthz":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.buckets.wait_time(client)
        if wait > 0:
            retry_after = str(max(1, int(wait + 0.999)))
            return await _send_json(send, 429, {"detail": f"rate limit exceeded; retry after {retry_after} s"}, {"Retry-After": retry_after})
        return await self.app(scope, receive, send)


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>` (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, credentials = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


class BearerAuthMiddleware:
    """401 for /v1/* requests without the right bearer token, before the body is read or validated."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/") and not token_matches(_header(scope, b"authorization"), self.token):
            return await _send_json(send, 401, {"detail": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                                    {"WWW-Authenticate": "Bearer"})
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 when Content-Length or the bytes actually sent exceed `max_bytes`; the body is buffered and replayed.

    strict_json: a JSON body with NaN or Infinity (which Python's parser accepts, and a database or client then turns
    into null or cannot read) gets 400 naming the value, instead of being stored changed.
    """

    def __init__(self, app, max_bytes: int, setting: str = "feedback.max_body_bytes", strict_json: bool = True):
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting
        self.strict_json = strict_json

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = {"detail": f"request body larger than the limit of {self.max_bytes} bytes ({self.setting})"}
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _send_json(send, 400, {"detail": "invalid Content-Length header"})
            if int(declared) > self.max_bytes:
                return await _send_json(send, 413, too_large)
        # Content-Length can be absent (chunked) or wrong, so count what really arrives.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _send_json(send, 413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if self.strict_json and body and "json" in (_header(scope, b"content-type") or "").lower():
            constant = non_standard_json_constant(body)
            if constant is not None:
                return await _send_json(send, 400, {"detail": f"the JSON body contains {constant}, which JSON does not allow; "
                                                              "send a number, a string or null instead"})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def non_standard_json_constant(body: bytes) -> str | None:
    """NaN, Infinity or -Infinity if the JSON text uses one (Python's parser accepts them, JSON does not), else None;
    None too for text that is not JSON at all (the route's own parser reports that)."""
    found: list[str] = []

    def reject(name: str):
        found.append(name)
        raise ValueError(name)

    try:
        json.loads(body, parse_constant=reject)
    except ValueError:  # JSONDecodeError is one too
        pass
    except RecursionError:
        return None
    return found[0] if found else None
