"""The OpenAI-compatible HTTP API over the built-in engine: chat completions (streaming too), models, health, readiness."""
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from loraflow.services.serving.engine import BatchingEngine
from loraflow.services.serving.requests import Delta, Failed, Finished, GenerationRequest
from loraflow.tasks.feedback.guards import BodyLimitMiddleware

INT64 = 2**63  # seeds go to torch.Generator.manual_seed, which takes a 64-bit integer
DEFAULT_MAX_BODY_BYTES = 4_194_304


@dataclass
class ServerState:
    """What the app serves; engine is None until the model has loaded (then /ready turns 200)."""

    served_model_name: str
    engine: BatchingEngine | None = None
    load_error: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. the reload watcher, closed on shutdown


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[TextPart] | None = None

    def as_dict(self) -> dict:
        """The message as the chat template expects it (text parts joined, developer treated as system)."""
        content = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role, "content": content}


class StreamOptions(BaseModel):
    include_usage: bool = False


class ResponseFormat(BaseModel):
    """OpenAI's response_format: text, json_object or json_schema ({"json_schema": {"name", "schema"}})."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> "ResponseFormat":
        if self.type == "json_schema" and not isinstance((self.json_schema or {}).get("schema"), dict):
            raise ValueError("type json_schema needs json_schema.schema, a JSON schema object")
        return self

    def schema(self) -> dict | str | None:
        """What the answer is constrained to: None for free text, the model's own schema for json_object, the given one."""
        if self.type == "text":
            return None
        return "model" if self.type == "json_object" else self.json_schema["schema"]


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI fields (user, metadata, ...) are accepted and ignored
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1)
    stop: str | list[str] | None = Field(None, max_length=4, description="Up to 4 stop sequences (as OpenAI allows).")
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    ignore_eos: bool = Field(False, description="vLLM extension: keep generating past EOS (benchmarks).")
    response_format: ResponseFormat | None = Field(
        None, description="Absent: a model released with declared answer fields answers under their schema (valid JSON, "
        "declared classes); {type: text}: unconstrained; {type: json_schema, json_schema: {schema: ...}}: that schema.")

    def to_generation(self) -> GenerationRequest:
        """The engine's view of this request."""
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return GenerationRequest(
            messages=[m.as_dict() for m in self.messages], max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature, top_p=self.top_p, stop=stop, seed=self.seed, ignore_eos=self.ignore_eos,
            schema=self.response_format.schema() if self.response_format else "model",
        )


def openai_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    """An error body in OpenAI's shape, which the official clients turn into typed exceptions."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def _fingerprint(version: str | None) -> str:
    return f"v{version}" if version else "local"


def _chunk(base: dict, delta: dict, finish_reason: str | None = None) -> str:
    body = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _usage(event: Finished) -> dict:
    return {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
            "total_tokens": event.prompt_tokens + event.completion_tokens}


def create_app(state: ServerState, lifespan=None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app serving `state`; the caller (or `lifespan`) loads the model and sets state.engine."""
    app = FastAPI(title="loraflow OpenAI-compatible server", lifespan=lifespan)
    app.state.serving = state
    # Before FastAPI parses anything: a body over the limit never reaches the JSON parser or the tokenizer.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, setting="serve.max_body_bytes")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors())
        return openai_error(400, f"invalid request: {problems}")

    @app.get("/health")
    async def health() -> JSONResponse:
        engine = state.engine
        body: dict[str, Any] = {"status": "ok" if state.load_error is None else "failed", "ready": engine is not None}
        if state.load_error:
            body["error"] = state.load_error
        if engine is not None:
            bundle = engine.bundle
            body["model"] = {"id": state.served_model_name, "source": bundle.source, "version": bundle.version,
                             "path": bundle.path, "device": str(bundle.device), "loaded_at": bundle.loaded_at}
            body["batches"] = len(engine.batch_sizes)
            body["largest_batch"] = max(engine.batch_sizes, default=0)
            body["requests_served"] = engine.requests_served
            body["joined_running_batch"] = engine.joined_running
            body["mean_rows_per_step"] = round(engine.decode_rows / engine.decode_steps, 2) if engine.decode_steps else 0.0
        # Liveness fails only when loading failed for good, so an orchestrator restarts the pod.
        return JSONResponse(body, status_code=503 if state.load_error else 200)

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if state.engine is None:
            return JSONResponse({"status": "loading" if state.load_error is None else "failed"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/v1/models")
    async def models() -> dict:
        root = state.engine.bundle.source if state.engine else None
        card = {"id": state.served_model_name, "object": "model", "created": state.created, "owned_by": "loraflow", "root": root}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        if body.model != state.served_model_name:
            return openai_error(404, f"the model `{body.model}` does not exist: this server serves `{state.served_model_name}`", "model_not_found")
        engine = state.engine
        if engine is None:
            return openai_error(503, "the model is still loading: retry when /ready answers 200")
        events = engine.events(body.to_generation())
        first = await anext(events)
        if isinstance(first, Failed):
            return openai_error(first.status, first.message)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": state.served_model_name,
                "system_fingerprint": _fingerprint(first.model_version)}
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_stream(events, base, include_usage), media_type="text/event-stream")
        return await _complete(events, base)

    return app


async def _complete(events, base: dict) -> JSONResponse:
    parts = []
    async for event in events:
        if isinstance(event, Delta):
            parts.append(event.text)
        elif isinstance(event, Failed):
            return openai_error(event.status, event.message)
        elif isinstance(event, Finished):
            message = {"role": "assistant", "content": "".join(parts)}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": event.finish_reason}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": _usage(event)})
    return openai_error(500, "generation ended without an answer")


async def _stream(events, base: dict, include_usage: bool):
    try:
        yield _chunk(base, {"role": "assistant", "content": ""})
        async for event in events:
            if isinstance(event, Delta):
                yield _chunk(base, {"content": event.text})
            elif isinstance(event, Finished):
                yield _chunk(base, {}, event.finish_reason)
                if include_usage:
                    yield f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', 'choices': [], 'usage': _usage(event)})}\n\n"
            elif isinstance(event, Failed):
                error = {"error": {"message": event.message, "type": "server_error", "code": event.status}}
                yield f"data: {json.dumps(error, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        await events.aclose()  # the client went away: cancel the request in the engine


__all__ = ["ChatCompletionRequest", "ServerState", "create_app", "openai_error"]
