"""Where a person looks: links to the MLflow run, its reports and the model version, and how to open the UIs."""
import os
from pathlib import Path
from urllib.parse import quote

from loraflow.schemas.results import RegisteredModel, TrackingRun

PREFECT_DEFAULT_PORT = 4200
MLFLOW_DEFAULT_PORT = 5000
# MLflow 3.17's UI opens in its GenAI view unless the page's URL asks for model training (a fresh browser ignores the
# experiment's mlflow.experimentKind tag): every MLflow link carries this query.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"
# Where a browser reaches the MLflow UI when that is not the tracking URI itself (a proxy, another host name, or the
# `mlflow ui` a person starts on a local store at another port).
UI_URL_ENV = "LORAFLOW_MLFLOW_UI_URL"


def is_server(tracking_uri: str) -> bool:
    """True for an MLflow tracking server (http/https), whose UI pages a browser can open."""
    return tracking_uri.startswith(("http://", "https://"))


def mlflow_ui_url(tracking_uri: str) -> str:
    """The MLflow UI's address: $LORAFLOW_MLFLOW_UI_URL, else the tracking server, else `mlflow ui`'s default port."""
    configured = os.environ.get(UI_URL_ENV)
    if configured:
        return configured.rstrip("/")
    return tracking_uri.rstrip("/") if is_server(tracking_uri) else f"http://127.0.0.1:{MLFLOW_DEFAULT_PORT}"


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str, tab: str = "") -> str | None:
    """The run's page in the MLflow UI (tab e.g. 'artifacts/eval/report.html'); None without an experiment id.

    For a local store the page is that of `mlflow ui` on it (the closing lines of a run print the command).
    """
    if not experiment_id:
        return None
    suffix = f"/{quote(tab)}" if tab else ""
    return f"{mlflow_ui_url(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}{suffix}{MODEL_TRAINING_VIEW}"


def mlflow_model_version_url(tracking_uri: str, name: str, version: str) -> str:
    """The registered model version's page in the MLflow UI."""
    return f"{mlflow_ui_url(tracking_uri)}/#/models/{quote(name)}/versions/{version}{MODEL_TRAINING_VIEW}"


def file_url(path: str | Path) -> str:
    """A file:// link to a local file (a report in the run folder)."""
    return Path(path).resolve().as_uri()


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


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that serves a local store's MLflow UI."""
    return f".venv/bin/mlflow ui --backend-store-uri {tracking_uri}"


def mlflow_ui_lines(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> list[str]:
    """How to open this run in the MLflow UI: the server's run page, or how to serve the local store."""
    url = mlflow_run_url(tracking_uri, experiment_id or "", run_id or "") if run_id else None
    if is_server(tracking_uri):
        return [url or mlflow_ui_url(tracking_uri)]
    return [f"{mlflow_ui_command(tracking_uri)}  (then {url or mlflow_ui_url(tracking_uri)}; another port: --port P"
            f" and {UI_URL_ENV}=http://127.0.0.1:P for the links)"]


# The pages a person opens after a run: (label, path in the run folder, which is also the MLflow artifact path).
REPORT_PAGES = (("data report", "data/report.html"), ("evaluation report", "eval/report.html"),
                ("training diagnosis", "train/diagnosis.md"))


def report_link(label: str, run: TrackingRun, out_dir: str, path: str) -> str:
    """A report as Markdown links: the file in the run folder (file://) and, with its MLflow artifact, that page."""
    url = mlflow_run_url(run.tracking_uri, run.experiment_id, run.run_id, f"artifacts/{path}")
    return f"[{label}]({file_url(Path(out_dir) / path)})" + (f" ([in MLflow]({url}))" if url else "")


def local_store_note(tracking_uri: str) -> list[str]:
    """For a local store, the line that says the MLflow links need `mlflow ui` running on it."""
    if is_server(tracking_uri):
        return []
    return [f"\nThe MLflow links open once the UI serves the local store: `{mlflow_ui_command(tracking_uri)}`"
            f" (MLflow UI address: {UI_URL_ENV}, now {mlflow_ui_url(tracking_uri)})."]


def run_links_markdown(run: TrackingRun, out_dir: str, registered: RegisteredModel | None) -> str:
    """Markdown links to the MLflow run, its reports (file:// and MLflow artifact) and the registered model version."""
    uri, experiment_id = run.tracking_uri, run.experiment_id
    lines = [f"- {markdown_link('MLflow run ' + run.run_id, mlflow_run_url(uri, experiment_id, run.run_id), uri)}"]
    lines += [f"- {report_link(label, run, out_dir, path)}" for label, path in REPORT_PAGES if (Path(out_dir) / path).is_file()]
    if registered:
        name, version = registered.name, registered.version
        label = f"model {name} version {version} ({', '.join(registered.aliases or ['no alias'])})"
        lines.append(f"- {markdown_link(label, mlflow_model_version_url(uri, name, version), registered.model_uri)}")
    return "\n".join(lines + local_store_note(uri))
