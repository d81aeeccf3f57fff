"""A real Prefect server + work pools + `prefect deploy` + a process worker, started once per pytest session."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT_FILE = "deployments/prefect.yaml"
POOLS = ("process", "docker", "kubernetes")
_STACK: dict | None = None


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, interval: float = 1.0) -> None:
    """Poll url every `interval` s until it answers 200; fail early, with its piped output, if the serving process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} came up"
                               + (f":\n{output}" if output else ""))
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start a command in its own process group (so stop() ends its children too), output to a log file."""
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL what is left after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a `prefect ...` command in the repository root; raise with its output when it fails."""
    done = subprocess.run([str(BIN / "prefect"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _start_stack(folder: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect-home"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
           "LORAFLOW_PROJECT_DIR": str(REPO), "LORAFLOW_FEEDBACK_DATABASE_URL": f"sqlite:///{folder / 'feedback.db'}",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           # Only the services the tests need: no scheduler (a scheduled run must not reach the worker mid-test),
           # no automations, late-run or worker-health sweeps (CPU the 2-core machine needs for training).
           **{f"PREFECT_SERVER_SERVICES_{s}_ENABLED": "false" for s in
              ("SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP", "TRIGGERS")}}
    procs = []
    server = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, folder / "server.log")
    procs.append(server)
    try:
        wait_http(f"{url}/health", 120, server)
        # The documented command, for every pool kind: creates the pools, registers each pool's deployments.
        deployed = subprocess.run([sys.executable, "-m", "loraflow.cli", "deploy", *(a for kind in POOLS for a in ("--pool", kind))],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if deployed.returncode != 0:
            raise AssertionError(f"loraflow deploy failed ({deployed.returncode}):\n{deployed.stdout[-3000:]}\n{deployed.stderr[-3000:]}")
        worker = start([str(BIN / "prefect"), "worker", "start", "--pool", "loraflow-process", "--type", "process"], env,
                       folder / "worker.log")
        procs.append(worker)
    except BaseException:
        for proc in reversed(procs):
            stop(proc)
        raise
    return {"url": url, "env": env, "folder": folder, "procs": procs, "deploy_output": deployed.stdout,
            "feedback_db": env["LORAFLOW_FEEDBACK_DATABASE_URL"]}


def prefect_stack(pytest_config) -> dict:
    """The session's server, pools, deployments and worker (started on first use, stopped when the session ends)."""
    global _STACK
    if _STACK is None:
        _STACK = _start_stack(Path(tempfile.mkdtemp(prefix="loraflow-prefect-stack-")))

        def _cleanup():
            global _STACK
            for proc in reversed(_STACK["procs"]):
                stop(proc)
            _STACK = None

        pytest_config.add_cleanup(_cleanup)
    return _STACK


def client_settings(stack: dict):
    """A context in which Prefect clients of this process talk to the stack's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: stack["url"]})


def wait_flow_run(stack: dict, flow_run_id, timeout: float) -> object:
    """Poll a flow run until it is final; returns it (with the worker log in the error when it times out)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with client_settings(stack), get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {flow_run_id} still {run.state.name if run.state else '?'} after {timeout:.0f} s; "
                                   f"worker log tail:\n{worker_log(stack)}")
            time.sleep(2)


def worker_log(stack: dict, chars: int = 4000) -> str:
    """The end of the worker's log (flow-run output included)."""
    path = stack["folder"] / "worker.log"
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def to_json(value) -> dict:
    """A pydantic config as plain JSON data (a deployment parameter)."""
    return json.loads(value.model_dump_json())
