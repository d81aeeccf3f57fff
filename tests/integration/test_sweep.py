"""`loraflow sweep` on the tiny pipeline under the Prefect test harness: two child runs under one MLflow parent."""
import json

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_sweep_runs_each_trial_as_a_child_run_and_reports_the_best(prefect_harness, tmp_path, capsys):
    from mlflow import MlflowClient

    from loraflow.cli import main

    out = tmp_path / "sweep"
    code = main(["sweep", str(REPO / "examples" / "tiny" / "pipeline.yaml"), "--out", str(out),
                 "--grid", "train.learning_rate=1e-4,1e-3",
                 "--set", "train.max_steps=2", "--set", "train.eval_steps=1", "--set", "eval.max_samples=4"])
    printed = capsys.readouterr().out
    assert code == 0, printed

    summary = json.loads((out / "sweep.json").read_text())
    trials = summary["trials"]
    assert [t["overrides"] for t in trials] == [["train.learning_rate=1e-4"], ["train.learning_rate=1e-3"]]
    assert all(isinstance(t["val_loss"], float) and t["error"] is None for t in trials)
    best = summary["best"]
    assert best["val_loss"] == min(t["val_loss"] for t in trials)
    assert f"best: {best['name']}" in printed
    for trial in trials:
        assert (out / trial["name"] / "model" / "adapter" / "adapter_config.json").is_file()

    run_json = json.loads((out / trials[0]["name"] / "run.json").read_text())
    client = MlflowClient(run_json["mlflow_tracking_uri"])
    parent_id = client.get_run(trials[0]["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best.trial"] == best["name"]
    assert parent.data.params["grid.train.learning_rate"] == "1e-4,1e-3"
    assert abs(parent.data.metrics["val/best_loss"] - best["val_loss"]) < 1e-9
    for trial in trials:
        child = client.get_run(trial["mlflow_run_id"])
        assert child.data.tags["mlflow.parentRunId"] == parent_id
        assert float(child.data.params["train.learning_rate"]) == float(trial["overrides"][0].split("=")[1])
    assert "registered_model" not in json.dumps(run_json.get("outcome", {})) or run_json["outcome"]["registered_model"] is None
