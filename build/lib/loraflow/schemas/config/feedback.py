"""The feedback service: where feedback is stored, how it is guarded, and when it starts a retrain."""
from pydantic import Field

from loraflow.schemas.config._base import Section


class FeedbackConfig(Section):
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the feedback database (e.g. postgresql+psycopg2://user@host/db); "
        "default: $LORAFLOW_FEEDBACK_DATABASE_URL, else SQLite at $LORAFLOW_HOME/feedback.db.",
    )
    host: str = Field("127.0.0.1", description="Interface `loraflow feedback serve` binds to (loopback unless exposed on purpose).")
    port: int = Field(8088, ge=1, le=65535, description="Port of the feedback API.")
    trigger_threshold: int = Field(
        50,
        ge=0,
        description="Start a retrain when this many badcases + corrections are pending (0: only on POST /v1/retrain).",
    )
    deployment_name: str = Field(
        "retrain-from-feedback/retrain-from-feedback",
        pattern=r"^[^/]+/[^/]+$",
        description="Prefect deployment (`flow name/deployment name`) started for each retrain batch.",
    )
    rate_limit_per_second: float = Field(
        20.0, gt=0.0, description="Sustained requests per second allowed per client (token-bucket refill rate)."
    )
    rate_limit_burst: int = Field(40, ge=1, description="Requests a client may send at once before the rate limit applies (bucket size).")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body in bytes; larger requests get 413."
    )
    max_page_size: int = Field(1000, ge=1, description="Largest `limit` accepted by GET /v1/feedback.")
