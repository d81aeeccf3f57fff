"""Failed, interrupted and killed pipeline runs: their MLflow runs end, reruns say what they continue and resume from."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.process_support import alive, processes  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
TINY = str(REPO / "examples" / "tiny" / "pipeline.yaml")
LONG_TRAINING = ["--set", "train.max_steps=5000", "--set", "train.save_steps=2", "--set", "train.logging_steps=1"]


def start_run(processes, out: Path, *extra: str) -> subprocess.Popen:
    """The run in a process group of its own, killed with everything it started when the test ends (failed or not)."""
    with (out.parent / f"{out.name}.log").open("ab") as log:
        return processes.start([sys.executable, "-m", "loraflow.cli", "run", TINY, "--out", str(out), *extra], log=log,
                               cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def wait_for(condition, proc: subprocess.Popen, timeout: float = 420) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run exited with {proc.returncode} too early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)


def stop_with(processes, proc: subprocess.Popen, signum: int) -> int:
    """Send one signal to the CLI process only; it must exit on its own, taking its child processes with it."""
    descendants = processes.remember(proc.pid)
    proc.send_signal(signum)
    code = proc.wait(120)
    with pytest.raises(ProcessLookupError):  # nothing left in its process group
        os.killpg(proc.pid, 0)
    assert not alive(descendants)  # nor the temporary Prefect server, which runs in a session of its own
    return code


def mlflow_run(run_json: dict):
    from mlflow import MlflowClient

    return MlflowClient(run_json["mlflow_tracking_uri"]).get_run(run_json["mlflow_run_id"])


def read_run_json(out: Path) -> dict:
    path = out / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_interrupted_runs_end_killed_and_the_rerun_links_and_resumes(tmp_path, processes):  # noqa: F811
    out = tmp_path / "run"
    first = start_run(processes, out, *LONG_TRAINING)
    # Any checkpoint: on an idle machine the tiny model trains several steps a second and older checkpoints are
    # rotated away, so a poll once a second can miss checkpoint-2 altogether (the run then trains to its end).
    checkpoints = out / "train" / "checkpoints"
    wait_for(lambda: any(checkpoints.glob("checkpoint-*/trainer_state.json")), first)
    assert stop_with(processes, first, signal.SIGINT) == 130
    first_info = read_run_json(out)
    run = mlflow_run(first_info)
    assert run.info.status == "KILLED" and run.info.end_time
    assert "Crashed" in run.data.tags["loraflow.end_reason"]

    second = start_run(processes, out, *LONG_TRAINING)
    wait_for(lambda: read_run_json(out).get("resumed_from_checkpoint"), second)
    assert stop_with(processes, second, signal.SIGTERM) == 143
    second_info = read_run_json(out)
    assert second_info["mlflow_run_id"] != first_info["mlflow_run_id"]
    assert second_info["continues_mlflow_run_id"] == first_info["mlflow_run_id"]
    resumed = Path(second_info["resumed_from_checkpoint"])
    assert resumed.parent == out / "train" / "checkpoints" and int(resumed.name.split("-")[1]) >= 2
    run = mlflow_run(second_info)
    assert run.info.status == "KILLED"
    assert run.data.tags["loraflow.continues_run_id"] == first_info["mlflow_run_id"]
    assert run.data.tags["train.resumed_from_checkpoint"] == str(resumed)
    log = (tmp_path / "run.log").read_text()
    assert f"resuming training from checkpoint {resumed}" in log


def test_a_run_that_fails_inside_the_flow_ends_failed(tmp_path, processes):  # noqa: F811
    blank = tmp_path / "blank.jsonl"  # not empty (an empty file is refused before the flow starts), but no records
    blank.write_text("\n\n")
    out = tmp_path / "run"
    proc = start_run(processes, out, "--input", str(blank))
    assert proc.wait(600) == 1
    run = mlflow_run(read_run_json(out))
    assert run.info.status == "FAILED" and run.info.end_time
    assert "blank.jsonl" in run.data.tags["loraflow.end_reason"]
