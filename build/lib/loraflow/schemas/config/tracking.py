"""Where runs are tracked: MLflow and Prefect, embedded by default."""
from pydantic import Field

from loraflow.schemas.config._base import Section


class TrackingConfig(Section):
    home: str = Field(".loraflow", description="Project-local folder for the embedded MLflow (SQLite) and Prefect stores.")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else SQLite under `home`.")
    experiment: str | None = Field(None, description="MLflow experiment name; default: the task card's name.")
