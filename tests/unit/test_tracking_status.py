"""Ending MLflow runs left RUNNING: a killed run found by the next run in the same folder, and runs that already ended."""
from mlflow import MlflowClient

from loraflow.schemas.results import TrackingRun
from loraflow.tasks.tracking import runs as tracking


def new_run(tmp_path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.ensure_experiment(uri, "status")
    return uri, MlflowClient(uri).create_run(experiment).info.run_id


def test_a_run_left_running_by_kill_9_is_ended_killed_and_continued(tmp_path):
    uri, run_id = new_run(tmp_path)
    assert tracking.close_previous_run({"mlflow_tracking_uri": uri, "mlflow_run_id": run_id}) == run_id
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "KILLED" and run.info.end_time
    assert "killed" in run.data.tags["loraflow.end_reason"]


def test_a_finished_run_is_left_alone_and_not_continued(tmp_path):
    uri, run_id = new_run(tmp_path)
    tracking.finish_run(TrackingRun(uri, run_id))
    assert tracking.close_previous_run({"mlflow_tracking_uri": uri, "mlflow_run_id": run_id}) is None
    assert not tracking.end_unfinished_run(uri, run_id, "FAILED", "late")
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"


def test_a_failed_run_is_continued_without_changing_it(tmp_path):
    uri, run_id = new_run(tmp_path)
    assert tracking.end_unfinished_run(uri, run_id, "FAILED", "boom")
    assert tracking.close_previous_run({"mlflow_tracking_uri": uri, "mlflow_run_id": run_id}) == run_id
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["loraflow.end_reason"] == "boom"


def test_no_previous_run_json_means_nothing_to_continue():
    assert tracking.close_previous_run({}) is None
