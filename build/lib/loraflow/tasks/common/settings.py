"""Embedded defaults: Prefect and MLflow stores under one project-local folder unless the user points elsewhere."""
import logging
import os
from pathlib import Path

HOME_ENV = "LORAFLOW_HOME"


def loraflow_home() -> Path:
    """The project-local folder for embedded stores ($LORAFLOW_HOME, default ./.loraflow)."""
    return Path(os.environ.get(HOME_ENV, ".loraflow")).resolve()


def mlflow_uri(explicit: str | None = None) -> str:
    """The MLflow tracking URI in force: the explicit one (tracking.mlflow_tracking_uri, --tracking-uri), else
    $MLFLOW_TRACKING_URI, else SQLite under the loraflow home."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{loraflow_home() / 'mlflow.db'}"


def configure_environment() -> None:
    """Set the embedded defaults before prefect/mlflow are imported; never overrides what the user set."""
    home = loraflow_home()
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The embedded server needs longer than the default 20 s on a busy 2-core machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "prefect" / "storage"),
        "MLFLOW_TRACKING_URI": mlflow_uri(),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    # bitsandbytes warns on every import that an optional CPU kernel package is missing; the fallback works.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def import_root() -> Path:
    """The folder that holds the `loraflow` package: a worker process started with it on PYTHONPATH imports this code."""
    import loraflow

    return Path(loraflow.__file__).resolve().parent.parent
