"""run.json, the run folder's index: reading and updating it, and logging later extras (human ratings, judge scores,
reports) to the MLflow run it names."""
import json
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.tracking.metric_names import mlflow_metric_name


def read_run_info(run_dir: str | Path) -> dict:
    """The run folder's run.json as a dict ({} when the folder has none)."""
    path = RunFolder(run_dir).run_json
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise LoraflowError(f"{path}:{error.lineno} is not valid JSON ({error.msg}); fix or delete the file.") from error


def write_run_json(out_dir: str, updates: dict) -> Path:
    """Merge keys into DIR/run.json, the run folder's index for scripts and later stages."""
    path = RunFolder(out_dir).run_json
    current = read_run_info(out_dir)
    current.update(updates)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2, ensure_ascii=False))
    return path


def log_to_run(
    run_dir: str | Path,
    metrics: dict[str, float] | None = None,
    dicts: dict[str, dict] | None = None,
    files: dict[str, str | Path] | None = None,
    tags: dict[str, str] | None = None,
) -> str | None:
    """Log metrics, JSON artifacts ({artifact_file: dict}), files ({artifact_dir: path}) and tags to the run's MLflow run.

    Returns the MLflow run id, or None when run.json names no MLflow run (nothing is logged then).
    """
    info = read_run_info(run_dir)
    run_id = info.get("mlflow_run_id")
    if not run_id:
        return None
    from mlflow import MlflowClient  # heavy: imported only when there is something to log

    client = MlflowClient(tracking_uri=info.get("mlflow_tracking_uri"))
    for key, value in (metrics or {}).items():
        if value is not None:
            client.log_metric(run_id, mlflow_metric_name(key), float(value))
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, str(value))
    for artifact_file, payload in (dicts or {}).items():
        client.log_dict(run_id, payload, artifact_file)
    for artifact_dir, path in (files or {}).items():
        client.log_artifact(run_id, str(path), artifact_path=artifact_dir or None)
    return run_id
