"""A Prefect server with its UI, a `loraflow deploy --pool process` database, an MLflow server and one finished tiny run.

For the browser test (tests/integration/test_browser_ui.py). Starting it takes minutes on 2 cores; while working on
the test, hold one (`python -m tests.integration.ui_stack_support FOLDER`, until Ctrl-C) and point the test at it
with LORAFLOW_UI_STACK=FOLDER/stack.json.
"""
import json
import os
import signal
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.prefect_stack_support import BIN, REPO, free_port, start, stop, wait_http

TINY = REPO / "examples" / "tiny" / "pipeline.yaml"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The system Chromium (Playwright's own browser download needs the internet), or None."""
    found = os.environ.get("LORAFLOW_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    return found if found and Path(found).exists() else None


def start_ui_stack(folder: Path) -> dict:
    """Start MLflow and Prefect (UI on), deploy the process pool, run the finetune deployment's flow once on the tiny example."""
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    mlflow_port, prefect_port = free_port(), free_port()
    mlflow_url, prefect_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}"
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect-home"), "PREFECT_API_URL": f"{prefect_url}/api",
           "PREFECT_SERVER_UI_API_URL": f"{prefect_url}/api", "PREFECT_UI_ENABLED": "true",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "LORAFLOW_PROJECT_DIR": str(REPO),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           **{f"PREFECT_SERVER_SERVICES_{s}_ENABLED": "false" for s in
              ("SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP", "TRIGGERS")}}
    try:
        procs.append(start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
                            str(folder / "mlartifacts"), "--workers", "1"], env, folder / "mlflow.log"))
        procs.append(start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)], env,
                           folder / "prefect.log"))
        wait_http(f"{prefect_url}/api/health", 180, procs[1])
        wait_http(f"{mlflow_url}/health", 180, procs[0])
        deployed = subprocess.run([sys.executable, "-m", "loraflow.cli", "deploy", "--pool", "process"], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=1800)
        if deployed.returncode != 0:
            raise AssertionError(f"loraflow deploy failed:\n{deployed.stdout[-2000:]}\n{deployed.stderr[-2000:]}")
        run = _finished_run(env, folder / "run", mlflow_url)
    except BaseException:
        for proc in reversed(procs):
            stop(proc)
        raise
    return {"prefect": prefect_url, "mlflow": mlflow_url, "env": env, "procs": procs, "run": run, "out": folder / "run"}


def _finished_run(env: dict, out: Path, mlflow_url: str) -> dict:
    """The finetune deployment's flow, run in a child process against the stack (its Run-form parameters)."""
    script = ("import json,sys; from loraflow.flows.finetune import finetune_from_file; "
              "print('RESULT' + json.dumps(finetune_from_file(config_path=sys.argv[1], out_dir=sys.argv[2], "
              "overrides=[f'tracking.mlflow_tracking_uri={sys.argv[3]}', 'task_card.name=what-you-see'])))")
    done = subprocess.run([sys.executable, "-c", script, str(TINY), str(out), mlflow_url], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    if done.returncode != 0 or not lines:
        raise AssertionError(f"the tiny finetune run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT"))


def stop_ui_stack(stack: dict) -> None:
    """Stop the servers (process groups)."""
    for proc in reversed(stack["procs"]):
        stop(proc)


if __name__ == "__main__":
    held = start_ui_stack(Path(sys.argv[1]))
    (Path(sys.argv[1]) / "stack.json").write_text(json.dumps({**{k: held[k] for k in ("prefect", "mlflow", "run")}, "out": str(held["out"])}))
    print(f"stack up: LORAFLOW_UI_STACK={Path(sys.argv[1]) / 'stack.json'}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    finally:
        stop_ui_stack(held)
