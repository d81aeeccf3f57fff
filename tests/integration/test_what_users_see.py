"""What a person sees after a finetune run, read through the HTTP calls the Prefect and MLflow UIs make.

One tiny finetune run tracked on a real `mlflow server`, orchestrated by the Prefect test harness; then the Prefect
V1 UI's task-run and artifact listings and the MLflow UI's experiment, run, artifact and model-version endpoints.
"""
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO
from tests.integration.prefect_stack_support import free_port, stop, wait_http

pytestmark = pytest.mark.slow

# The task-input kinds the default (V1) Prefect UI accepts; any other one hides every task run of the flow run.
V1_UI_INPUT_TYPES = {"task_run", "parameter", "constant"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                             "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            # no background job runner (seven huey consumers): only the UI's REST endpoints are read
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 180, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def finished(prefect_harness, mlflow_server, tmp_path_factory) -> dict:
    from prefect.settings import PREFECT_API_URL

    from loraflow.flows.finetune import finetune
    from loraflow.tasks.common.config_files import load_config

    config = load_config(REPO / "examples" / "tiny" / "pipeline.yaml",
                         [f"tracking.mlflow_tracking_uri={mlflow_server}", "task_card.name=what-users-see"])
    out = tmp_path_factory.mktemp("run")
    result = finetune(config=config, out_dir=str(out))
    return {"run": result, "out": out, "prefect": PREFECT_API_URL.value().rstrip("/"), "mlflow": mlflow_server}


def _post(url: str, body: dict) -> list[dict]:
    response = httpx.post(url, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _get(url: str, **params) -> dict:
    response = httpx.get(url, params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def test_the_prefect_ui_lists_every_task_run_of_the_flow_run_and_of_the_data_subflow(finished):
    api, flow_run_id = finished["prefect"], finished["run"]["prefect_flow_run_id"]
    listed = _post(f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})
    names = {run["name"].rsplit("-", 1)[0] for run in listed}
    assert {"start-tracking", "log-data", "train", "merge-and-register", "finish-tracking"} <= names
    kinds = {item["input_type"] for run in listed for inputs in run["task_inputs"].values() for item in inputs}
    assert kinds <= V1_UI_INPUT_TYPES and "task_run" in kinds  # the data flow's outputs still link tasks to tasks

    children = _post(f"{api}/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}})
    flows = {f["id"]: f["name"] for f in _post(f"{api}/flows/filter", {"flows": {"id": {"any_": [c["flow_id"] for c in children]}}})}
    [data_run] = [c for c in children if flows[c["flow_id"]] == "data"]  # the subflow keeps its own run page
    data_tasks = _post(f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": [data_run["id"]]}}, "limit": 200})
    assert {"ingest", "validate", "clean", "split", "data-report"} <= {t["name"].rsplit("-", 1)[0] for t in data_tasks}


def test_prefect_artifacts_end_at_100_percent_and_link_to_the_mlflow_run_and_reports(finished):
    api, flow_run_id, mlflow = finished["prefect"], finished["run"]["prefect_flow_run_id"], finished["mlflow"]
    artifacts = _post(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    by_key = {a["key"]: a for a in artifacts if a["key"]}
    assert by_key["training-progress"]["data"] == 100.0
    run_page = f"{mlflow}/#/experiments/{finished['run']['mlflow_experiment_id']}/runs/{finished['run']['mlflow_run_id']}"
    view = "?workflowType=machine_learning"  # the model-training view, not MLflow 3.17's GenAI default
    assert f"]({run_page}{view})" in by_key["mlflow-run"]["data"]
    links = by_key["run-links"]["data"]
    for page in ("artifacts/data/report.html", "artifacts/eval/report.html"):
        assert f"]({run_page}/{page}{view})" in links
    registered = finished["run"]["outcome"]["registered_model"]
    assert f"]({mlflow}/#/models/what-users-see/versions/{registered['version']}{view})" in links


def test_the_mlflow_experiment_opens_in_the_model_training_view_with_named_training_metrics(finished):
    api, run = f"{finished['mlflow']}/api/2.0/mlflow", finished["run"]
    experiment = _get(f"{api}/experiments/get", experiment_id=run["mlflow_experiment_id"])["experiment"]
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
    metrics = {m["key"] for m in _get(f"{api}/runs/get", run_id=run["mlflow_run_id"])["run"]["data"]["metrics"]}
    assert {"train/loss", "train/summary/mean_train_loss_all_steps", "train/summary/steps_done", "val/loss"} <= metrics
    assert "eval/candidate/field/category/accuracy" in metrics and "eval/majority/field/category/accuracy" in metrics
    assert not any(m.startswith("train.") for m in metrics)  # the old `train.train_loss` beside `train_loss`
    files = {f["path"] for path in ("", "data", "model")
             for f in _get(f"{api}/artifacts/list", run_id=run["mlflow_run_id"], path=path).get("files", [])}
    assert {"estimate.json", "data/train.jsonl", "data/val.jsonl", "data/test.jsonl", "data/report.html", "model/parity.json"} <= files


def test_the_registered_version_carries_the_task_card_metrics_and_gate_and_run_json_names_its_real_aliases(finished):
    api, run = f"{finished['mlflow']}/api/2.0/mlflow", finished["run"]
    registered = run["outcome"]["registered_model"]
    version = _get(f"{api}/model-versions/get", name="what-users-see", version=registered["version"])["model_version"]
    assert sorted(version.get("aliases", [])) == registered["aliases"]
    data_hash = {t["key"]: t["value"] for t in version["tags"]}["data.hash"]
    description = version["description"]
    assert "what-users-see" in description and "json_field_accuracy" in description and data_hash[:12] in description
    assert ("promoted to champion" in description) == run["outcome"]["promotion"]["promote"]
    card = httpx.get(f"{finished['mlflow']}/get-artifact", params={"path": "merged_model/model_card.md", "run_uuid": run["mlflow_run_id"]},
                     timeout=30).text
    assert "## Promotion gate" in card and data_hash in card
    for reason in run["outcome"]["promotion"]["reasons"]:
        assert reason in card
    for alias in ("champion", "challenger"):
        found = httpx.get(f"{api}/registered-models/alias", params={"name": "what-users-see", "alias": alias}, timeout=30)
        assert (found.status_code == 200 and found.json()["model_version"]["version"] == registered["version"]) == (alias in registered["aliases"])
