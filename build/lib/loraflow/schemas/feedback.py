"""Request and response bodies of the feedback API."""
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

Rating = Literal["up", "down"] | Annotated[StrictInt, Field(ge=1, le=5)]
FeedbackKind = Literal["correction", "badcase", "ok"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"] = Field(description="Who wrote the turn.")
    content: str = Field(min_length=1, max_length=200_000, description="The text of the turn.")


class FeedbackIn(BaseModel):
    """One piece of production feedback on one model answer."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(
        min_length=1, max_length=200, description="The request the model answered; ends with the user turn."
    )
    output: str = Field(max_length=200_000, description="What the model answered.")
    rating: Rating = Field(description='"up"/"down" (thumbs) or 1-5 stars; "down" and 1-2 stars count as badcases.')
    correction: str | None = Field(
        None, min_length=1, max_length=200_000, description="The answer the model should have given; becomes a training record."
    )
    model_version: str = Field(min_length=1, max_length=200, description="The served model version that produced `output`.")
    timestamp: datetime | None = Field(None, description="When the answer was given (ISO 8601); default: when the API received it.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form context kept with the record (e.g. category, user tier).")

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        # The correction is appended as the assistant turn, so the request must end where the model answered.
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user turn the model answered")
        return messages

    @property
    def kind(self) -> FeedbackKind:
        """correction (has a corrected answer), badcase (bad rating, no correction) or ok."""
        if self.correction is not None:
            return "correction"
        return "badcase" if self.rating in ("down", 1, 2) else "ok"


class FeedbackOut(BaseModel):
    """A stored feedback item."""

    id: str = Field(description="Server-assigned id; a retried post with the same Idempotency-Key returns the same id.")
    kind: FeedbackKind = Field(description="correction, badcase or ok.")
    messages: list[ChatMessage]
    output: str
    rating: Rating
    correction: str | None
    model_version: str
    timestamp: datetime
    received_at: datetime = Field(description="When the API stored it (UTC).")
    metadata: dict[str, Any]
    batch_id: str | None = Field(description="The retrain batch that took this item, if any.")


class FeedbackCreated(BaseModel):
    id: str = Field(description="Id of the stored feedback.")
    kind: FeedbackKind
    duplicate: bool = Field(description="True when this was a retry of an earlier post with the same Idempotency-Key.")
    retrain_batch_id: str | None = Field(None, description="Set when this post made the pending feedback reach the retrain threshold.")


class FeedbackPage(BaseModel):
    items: list[FeedbackOut]
    total: int = Field(description="Items matching the filters, ignoring limit/offset.")
    limit: int
    offset: int


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str | None = Field(None, description="Retry this batch whose trigger failed; default: a new batch of all pending feedback.")


class RetrainResponse(BaseModel):
    started: bool = Field(description="Whether a retrain run was started by this call.")
    batch_id: str | None = None
    feedback_count: int = 0
    flow_run_id: str | None = Field(None, description="Prefect flow-run id of the started retrain.")
    detail: str = ""


class BatchOut(BaseModel):
    id: str
    reason: str
    status: str
    feedback_count: int
    created_at: datetime
    flow_run_id: str | None
    error: str | None
