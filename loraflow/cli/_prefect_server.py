"""The temporary Prefect API server of a CLI run: alive until the CLI has finished, whatever signal the group gets.

Prefect starts its temporary server as a plain child process: in the CLI's process group, with uvicorn's handlers
stopping it on SIGINT and SIGTERM. A terminal's Ctrl-C (and `timeout`, systemd, Kubernetes) signals the whole group,
so the server went down at the moment the flow was interrupted, and the flow could no longer record that it crashed:
exit 1 after minutes of connection retries, the MLflow run left RUNNING.

Here the CLI starts that server itself (registered where Prefect looks for its default temporary server, as Prefect's
own test harness does). It runs in its own session, ignores SIGINT and SIGTERM, and stops when its stdin closes: when
the CLI stops it at exit (after Prefect's log and event workers have drained), or when the CLI is gone for any reason,
`kill -9` included, so it is never left behind. Its output goes to a log file, not the user's terminal.
"""
import contextlib
import os
import signal
import subprocess
import sys
import threading

STOP_TIMEOUT_S = 5  # then it is killed (it ignores SIGTERM); SQLite survives that


def use_own_temporary_server() -> None:
    """Make the temporary server Prefect starts on demand (when no PREFECT_API_URL is set) the one described above."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED
    from prefect.settings import get_current_settings

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    current = SubprocessASGIServer._instances.get(None)
    if current is not None and (current.running or isinstance(current, _server_class())):
        return

    SubprocessASGIServer._instances[None] = _server_class()(settings_env=get_current_settings().to_environment_variables(
        exclude_unset=True))


_CLASS = None


def _server_class():
    """The SubprocessASGIServer whose process is started and stopped as described in the module docstring."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from prefect.server.api.server import SubprocessASGIServer

    class CliTemporaryServer(SubprocessASGIServer):
        _instances: dict = {}  # its own registry: the instance is placed under Prefect's default key by hand

        def __init__(self, port: int | None = None, settings_env: dict | None = None):
            super().__init__(port)
            self.settings_env = settings_env or {}

        def _run_uvicorn_command(self) -> subprocess.Popen:
            from loraflow.tasks.common.settings import loraflow_home

            log_path = loraflow_home() / "prefect-server.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
                   **self.settings_env}
            with log_path.open("ab") as log:
                return subprocess.Popen([sys.executable, "-m", __name__, str(self.port)], stdin=subprocess.PIPE,
                                        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def stop(self) -> None:
            process = self.server_process
            if process is not None and process.poll() is None and process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # the server's signal to shut down gracefully
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(STOP_TIMEOUT_S)
            if process is not None and process.poll() is None:
                process.kill()
            super().stop()
            if SubprocessASGIServer._instances.get(None) is self:
                del SubprocessASGIServer._instances[None]

    _CLASS = CliTemporaryServer
    return _CLASS


def serve(port: int) -> int:
    """Run Prefect's API on 127.0.0.1:port until stdin closes; SIGINT and SIGTERM sent to the group do not stop it."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # uvicorn would stop on SIGINT/SIGTERM; this server's lifetime is its stdin
            yield

    server = Server(uvicorn.Config("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port,
                                   log_level="error", lifespan="on", timeout_graceful_shutdown=1))

    def stop_when_stdin_closes() -> None:
        with contextlib.suppress(OSError):
            sys.stdin.buffer.read()
        server.should_exit = True

    threading.Thread(target=stop_when_stdin_closes, name="stdin-watch", daemon=True).start()
    server.run()
    return 0 if server.started else 3  # 3: uvicorn's start-up failure, on which Prefect retries another port


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1])))
