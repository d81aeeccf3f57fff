"""One call to an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, TGI, llama.cpp server, OpenAI)."""
import httpx

from loraflow.tasks.common.errors import LoraflowError

# Statuses worth retrying: the server is busy, restarting or rate-limiting, not refusing the request.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def completions_url(endpoint: str) -> str:
    """The chat-completions URL for a base URL given with or without its `/v1` (or the full URL)."""
    base = endpoint.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


def chat_complete(
    endpoint: str,
    model: str,
    messages: list[dict],
    *,
    temperature: float = 0.7,
    max_tokens: int = 1024,
    seed: int | None = None,
    timeout: float = 60.0,
    api_key: str | None = None,
    client: httpx.Client | None = None,
    setting: str = "augment.endpoint",
    model_setting: str = "augment.endpoint_model",
) -> str:
    """Send one chat request and return the first choice's text; no retries here.

    Transient failures (connection errors, timeouts, 408/429/5xx) raise httpx errors so that the
    caller's retry policy sees them; a refused request (other 4xx) or an answer not in the OpenAI
    chat format raises LoraflowError, since retrying cannot fix it. `setting` and `model_setting` name the config keys of the endpoint and the model.
    """
    url = completions_url(endpoint)
    payload = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    if seed is not None:
        payload["seed"] = seed
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if client is None:
        with httpx.Client(timeout=timeout) as own:
            response = own.post(url, json=payload, headers=headers)
    else:
        response = client.post(url, json=payload, headers=headers, timeout=timeout)
    if response.status_code in TRANSIENT_STATUSES:
        response.raise_for_status()
    if response.status_code >= 400:
        raise LoraflowError(
            f"chat endpoint {url} refused the request with HTTP {response.status_code} "
            f"({response.text[:200].strip()!r}); check {setting} and {model_setting}={model!r}."
        )
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise LoraflowError(
            f"chat endpoint {url} did not answer in the OpenAI chat format (choices[0].message.content); "
            f"point {setting} at an OpenAI-compatible server such as vLLM's."
        )
    return content.strip()
