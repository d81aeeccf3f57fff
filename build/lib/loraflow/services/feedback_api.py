"""The feedback HTTP API: production systems post ratings and corrections; enough of them start a retrain."""
import json
import os
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, FastAPI, Header, HTTPException, Query, Request, Response, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.schemas.feedback import (
    BatchOut, FeedbackCreated, FeedbackIn, FeedbackKind, FeedbackOut, FeedbackPage, RetrainRequest, RetrainResponse,
)
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.guards import TOKEN_ENV, BearerAuthMiddleware, BodyLimitMiddleware, RateLimitMiddleware
from loraflow.tasks.feedback.store import PENDING_KINDS, FeedbackStore, IdempotencyConflict
from loraflow.services.retrain_trigger import Trigger, fire_batch, prefect_trigger, start_retrain


def resolve_token(insecure_no_auth: bool = False) -> str | None:
    """The bearer token from $LORAFLOW_FEEDBACK_TOKEN; refuses to run without one unless insecure_no_auth."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    if insecure_no_auth:
        return None
    raise LoraflowError(
        f"{TOKEN_ENV} is not set, so the feedback API would accept anyone; set it to the token clients send as "
        f"'Authorization: Bearer <token>' (e.g. export {TOKEN_ENV}=$(openssl rand -hex 32)), or pass --insecure-no-auth for a local test"
    )


def create_app(
    config: FeedbackConfig, trigger: Trigger | None = None, *, token: str | None = None, insecure_no_auth: bool = False,
) -> FastAPI:
    """The feedback API over config.database_url; trigger(batch_id, feedback_ids) starts a retrain (default: Prefect deployment)."""
    token = token or resolve_token(insecure_no_auth)
    store = FeedbackStore(config.database_url)
    trigger = trigger or prefect_trigger(config.deployment_name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        store.dispose()

    app = FastAPI(
        title="loraflow feedback API", version="1",
        description="Ratings and corrections of served answers; badcases and corrections feed the retrain-from-feedback run.",
        lifespan=lifespan,
    )
    app.state.store = store
    # add_middleware wraps: the last one added runs first (rate limit -> auth -> body size -> routes).
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if token is not None:
        app.add_middleware(BearerAuthMiddleware, token=token)
    app.add_middleware(RateLimitMiddleware, rate=config.rate_limit_per_second, burst=config.rate_limit_burst)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        # Drop the echoed input: it can be large, and the field path plus message is what the caller needs.
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in error.errors()]
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse(status_code=422, content=jsonable_encoder({"detail": errors, "message": f"invalid request: {message}"}))

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_request: Request, error: IdempotencyConflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={
            "detail": f"Idempotency-Key was already used for feedback {error.args[0]} with a different body; use a new key for new feedback"})

    @app.get("/healthz", tags=["health"], responses={503: {"description": "The database is unreachable"}})
    def healthz() -> dict:
        """Liveness and database reachability (no auth)."""
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            raise HTTPException(503, f"feedback database unreachable: {type(error).__name__}") from None
        return {"status": "ok"}

    bearer = HTTPBearer(auto_error=False, description=f"The token in ${TOKEN_ENV} on the server.")
    # The middleware enforces the token; the Security dependency puts the scheme into the OpenAPI spec.
    router = APIRouter(prefix="/v1", dependencies=[Security(bearer)])

    @router.post("/feedback", status_code=201, response_model=FeedbackCreated,
                 responses={200: {"description": "A retry of an earlier post with the same Idempotency-Key", "model": FeedbackCreated},
                            409: {"description": "Idempotency-Key reused with a different body"}})
    def post_feedback(
        item: FeedbackIn, response: Response, background: BackgroundTasks,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                                      description="Client-chosen key; a retried post with it is stored once.")] = None,
    ) -> FeedbackCreated:
        """Store one rating/correction; may start a retrain when enough badcases and corrections are pending."""
        row, created = store.add(item, idempotency_key)
        batch_id = None
        if not created:
            response.status_code = 200
        elif row["kind"] in PENDING_KINDS and config.trigger_threshold > 0 and store.pending_count() >= config.trigger_threshold:
            batch = store.claim_batch("threshold", min_count=config.trigger_threshold)
            if batch is not None:
                batch_id = batch["id"]
                # The claim is committed already; starting the run happens after the response is sent.
                background.add_task(fire_batch, store, trigger, batch)
        return FeedbackCreated(id=row["id"], kind=row["kind"], duplicate=not created, retrain_batch_id=batch_id)

    @router.get("/feedback", response_model=FeedbackPage,
                responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON page, or JSON Lines with format=jsonl"}})
    def list_feedback(
        since: Annotated[datetime | None, Query(description="Only feedback received at or after this time (ISO 8601).")] = None,
        kind: Annotated[FeedbackKind | None, Query(description="Only this kind.")] = None,
        limit: Annotated[int | None, Query(ge=1, le=config.max_page_size, description="Page size (json: default 100; jsonl: default all).")] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        format: Annotated[Literal["json", "jsonl"], Query(description="json: one page; jsonl: one item per line, for export.")] = "json",
    ):
        """List stored feedback, oldest first; format=jsonl streams it as JSON Lines."""
        if format == "jsonl":
            return StreamingResponse(_jsonl_lines(store, since, kind, limit, offset), media_type="application/x-ndjson")
        rows, total = store.list_feedback(since=since, kind=kind, limit=limit or 100, offset=offset)
        return FeedbackPage(items=[FeedbackOut(**r) for r in rows], total=total, limit=limit or 100, offset=offset)

    @router.post("/retrain", response_model=RetrainResponse, status_code=202,
                 responses={200: {"description": "Nothing pending: no run started", "model": RetrainResponse},
                            404: {"description": "Unknown batch_id"}, 409: {"description": "The batch was already triggered"},
                            502: {"description": "The trigger failed; retry with this batch_id", "model": RetrainResponse}})
    def retrain(response: Response, body: RetrainRequest | None = None) -> RetrainResponse:
        """Start a retrain for all pending badcases and corrections (or retry a batch whose trigger failed)."""
        if body is not None and body.batch_id is not None:
            batch = store.get_batch(body.batch_id)
            if batch is None:
                raise HTTPException(404, f"no retrain batch {body.batch_id!r}; GET /v1/batches lists them")
            if not store.reopen_failed_batch(batch["id"]):
                raise HTTPException(409, f"batch {batch['id']} is {batch['status']}, not trigger_failed; it is not started again")
            result = fire_batch(store, trigger, batch)
        else:
            result = start_retrain(store, trigger, reason="manual")
        if result is None:
            response.status_code = 200
            return RetrainResponse(started=False, detail="no pending badcases or corrections; nothing to retrain")
        started = result["status"] == "triggered"
        if not started:
            response.status_code = 502
        return RetrainResponse(started=started, batch_id=result["id"], feedback_count=len(result["feedback_ids"]),
                               flow_run_id=result.get("flow_run_id"), detail=result.get("error") or "")

    @router.get("/batches", response_model=list[BatchOut])
    def list_batches() -> list[BatchOut]:
        """Retrain batches, oldest first, with their status and flow-run id."""
        return [BatchOut(**{k: b[k] for k in BatchOut.model_fields}) for b in store.list_batches()]

    app.include_router(router)
    return app


def _jsonl_lines(store: FeedbackStore, since, kind, limit: int | None, offset: int, page: int = 1000) -> Iterator[str]:
    """Matching feedback as JSON Lines, read page by page so a large export never sits in memory."""
    remaining = limit
    while remaining is None or remaining > 0:
        size = page if remaining is None else min(page, remaining)
        rows, _ = store.list_feedback(since=since, kind=kind, limit=size, offset=offset)
        for row in rows:
            yield json.dumps(FeedbackOut(**row).model_dump(mode="json"), ensure_ascii=False) + "\n"
        if len(rows) < size:
            return
        offset += size
        remaining = None if remaining is None else remaining - size
