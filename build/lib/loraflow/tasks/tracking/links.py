"""Where a person looks: links to the MLflow run, its reports and the model version, and how to open the UIs."""
from pathlib import Path
from urllib.parse import quote

from loraflow.schemas.results import RegisteredModel, TrackingRun

PREFECT_DEFAULT_PORT = 4200
MLFLOW_DEFAULT_PORT = 5000
# MLflow 3.17's UI opens in its GenAI view unless the page's URL asks for model training (a fresh browser ignores the
# experiment's mlflow.experimentKind tag): every MLflow link carries this query.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


def is_server(tracking_uri: str) -> bool:
    """True for an MLflow tracking server (http/https), whose UI pages a browser can open."""
    return tracking_uri.startswith(("http://", "https://"))


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str, tab: str = "") -> str | None:
    """The run's page in the MLflow UI (tab e.g. 'artifacts/eval/report.html'), or None when tracking is no server."""
    if not is_server(tracking_uri) or not experiment_id:
        return None
    suffix = f"/{quote(tab)}" if tab else ""
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}{suffix}{MODEL_TRAINING_VIEW}"


def mlflow_model_version_url(tracking_uri: str, name: str, version: str) -> str | None:
    """The registered model version's page in the MLflow UI, or None when tracking is no server."""
    if not is_server(tracking_uri):
        return None
    return f"{tracking_uri.rstrip('/')}/#/models/{quote(name)}/versions/{version}{MODEL_TRAINING_VIEW}"


def markdown_link(text: str, url: str | None, fallback: str) -> str:
    """A markdown link when there is a URL, else the text with where to find it (a local path or store URI)."""
    return f"[{text}]({url})" if url else f"{text}: `{fallback}`"


def prefect_ui_lines(api_url: str | None, prefect_home: str | None, flow_run_id: str | None) -> list[str]:
    """How to open this flow run in the Prefect UI: the server's page, or how to start a server on the local store.

    `prefect server start --port P` serves a UI that still calls port 4200 unless PREFECT_SERVER_UI_API_URL names
    the new port, so the hint for another port says so.
    """
    page = f"/runs/flow-run/{flow_run_id}" if flow_run_id else ""
    if api_url:
        return [f"{api_url.rstrip('/').removesuffix('/api')}{page}"]
    home = f"PREFECT_HOME={prefect_home} " if prefect_home else ""
    port = PREFECT_DEFAULT_PORT
    return [f"{home}.venv/bin/prefect server start  (then http://127.0.0.1:{port}{page})",
            f"on another port P: {home}PREFECT_SERVER_UI_API_URL=http://127.0.0.1:P/api .venv/bin/prefect server start --port P"]


def mlflow_ui_lines(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> list[str]:
    """How to open this run in the MLflow UI: the server's run page, or how to serve the local store."""
    url = mlflow_run_url(tracking_uri, experiment_id or "", run_id or "")
    if url:
        return [url]
    page = f"/#/experiments/{experiment_id}/runs/{run_id}{MODEL_TRAINING_VIEW}" if experiment_id and run_id else ""
    return [f".venv/bin/mlflow ui --backend-store-uri {tracking_uri}  (then http://127.0.0.1:{MLFLOW_DEFAULT_PORT}{page};"
            f" another port: --port P)"]


# The pages a person opens after a run: (label, path in the run folder, which is also the MLflow artifact path).
REPORT_PAGES = (("data report", "data/report.html"), ("evaluation report", "eval/report.html"),
                ("training diagnosis", "train/diagnosis.md"))


def run_links_markdown(run: TrackingRun, out_dir: str, registered: RegisteredModel | None) -> str:
    """Links to the MLflow run, its report artifacts and the model version (a tracking server), else where they are."""
    uri, experiment_id = run.tracking_uri, run.experiment_id
    lines = [f"- {markdown_link('MLflow run ' + run.run_id, mlflow_run_url(uri, experiment_id, run.run_id), uri)}"]
    for label, path in REPORT_PAGES:
        if (Path(out_dir) / path).is_file():
            url = mlflow_run_url(uri, experiment_id, run.run_id, f"artifacts/{path}")
            lines.append(f"- {markdown_link(label, url, str((Path(out_dir) / path).resolve()))}")
    if registered:
        name, version = registered.name, registered.version
        label = f"model {name} version {version} ({', '.join(registered.aliases or ['no alias'])})"
        lines.append(f"- {markdown_link(label, mlflow_model_version_url(uri, name, version), registered.model_uri)}")
    return "\n".join(lines)
