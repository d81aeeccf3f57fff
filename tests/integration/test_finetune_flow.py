"""The whole pipeline under the Prefect test harness on the tiny model: run folder contract, MLflow, caching."""
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_config():
    from loraflow.tasks.common.config_files import load_config

    return load_config(REPO / "examples" / "tiny" / "pipeline.yaml")


def _task_states(flow_run_ids: set[str], expect: tuple[str, ...] = (), settle_s: float = 60.0) -> dict[str, str]:
    """Task name -> final state name for the task runs of the given (finished) flow runs.

    Task runs reach the API through events, a moment after the flow returns: on a loaded machine a task that finished
    can still read Running, or not be there yet, so wait (up to settle_s) until none does and every `expect`ed one is
    there. Read by flow run: an unfiltered read stops at the API's page limit once the session's harness holds many.
    """
    import time
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + settle_s
    ids = [uuid.UUID(i) for i in flow_run_ids]
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        states = {run.name.rsplit("-", 1)[0]: run.state.name for run in runs if run.state}
        settled = not any(state in ("Running", "Pending", "Scheduled") for state in states.values())
        if (settled and set(expect) <= set(states)) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def _subflow_ids(parent_id: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
    return {str(c.id) for c in children} | {parent_id}


def test_finetune_flow_writes_the_run_folder_and_caches_data_stages_on_rerun(prefect_harness, tiny_config, tmp_path):
    from mlflow import MlflowClient

    from loraflow.flows.finetune import finetune

    out = tmp_path / "run"
    first = finetune(config=tiny_config, out_dir=str(out))

    for name in ("train", "val", "test", "quarantine", "review"):
        assert (out / "data" / f"{name}.jsonl").is_file(), name
    report = json.loads((out / "data" / "report.json").read_text())
    assert report["input"] == 310
    assert report["quarantined"] >= 2  # the malformed line and the wrong role
    assert report["conservation"]["holds"]
    assert (out / "model" / "adapter" / "adapter_config.json").is_file()
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert "json_field_accuracy" in metrics["labels"]["candidate"]["metrics"]
    # Field-aware: every answer field scored, the trivial baselines beside the models, the gate's field checks recorded.
    assert {"majority", "stratified", "base", "candidate"} <= set(metrics["labels"])
    assert {"category", "priority", "product"} <= set(metrics["labels"]["candidate"]["fields"])
    assert metrics["labels"]["majority"]["fields"]["category"]["kind"] == "categorical" and metrics["field_checks"]
    assert (out / "eval" / "predictions.jsonl").stat().st_size > 0
    run_json = json.loads((out / "run.json").read_text())
    assert run_json == first
    assert run_json["prefect_flow_run_id"]

    client = MlflowClient(run_json["mlflow_tracking_uri"])
    run = client.get_run(run_json["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    home = Path(run_json["mlflow_tracking_uri"].removeprefix("sqlite:///")).parent
    assert run.info.artifact_uri.startswith((home / "mlartifacts").as_uri())  # embedded: one project-local folder
    assert run.data.params["train.learning_rate"] == "None" and run.data.params["lora.r"] == "8"
    assert run.data.tags["prefect.flow_run_id"] == run_json["prefect_flow_run_id"]
    assert len(run.data.tags["data.hash"]) == 64
    assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {"ticket-extraction-tiny-train", "ticket-extraction-tiny-test"}
    assert client.get_metric_history(run.info.run_id, "train/loss")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"task_card.json", "config.json", "adapter", "data", "eval", "train"} <= artifacts

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        keys = {a.key for a in prefect.read_artifacts()}
    assert {"mlflow-run", "resource-estimate", "data-report", "data-counts", "training-progress", "training-diagnosis",
            "evaluation", "promotion-decision"} <= keys

    second = finetune(config=tiny_config, out_dir=str(out))
    states = _task_states(_subflow_ids(second["prefect_flow_run_id"]), expect=("ingest", "validate", "clean", "split", "data-report", "train"))
    for name in ("ingest", "validate", "clean", "split", "data-report"):
        assert states[name] == "Cached", (name, states)
    assert states["train"] == "Completed"
    assert second["mlflow_run_id"] != first["mlflow_run_id"]

    # A deleted run folder must not be "restored" from the cache as paths to files that are gone.
    from loraflow.flows.data import prepare_data

    shutil.rmtree(out)
    again = prepare_data(config=tiny_config, out_dir=str(out))
    assert Path(again.splits.train).is_file() and (out / "data" / "report.json").is_file()
