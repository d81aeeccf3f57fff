"""The CLI's signal policy: SIGINT is an interrupt whatever the CLI inherited, and the temporary Prefect server it
starts survives group signals, stops when the CLI stops it, and stops on its own when the CLI is killed."""
import os
import signal
import subprocess
import sys
import time
from textwrap import dedent

import httpx
import psutil
import pytest

from tests.conftest import REPO
from tests.integration.process_support import alive, processes  # noqa: F401 (fixture)


def test_the_cli_handles_sigint_even_when_started_with_it_ignored(tmp_path):
    """A script's background job (`cmd &`) or a CI runner starts commands with SIGINT ignored; Python keeps it ignored
    unless told otherwise, and a SIGINT to the run's PID was then lost without a trace."""
    program = dedent("""
        import signal, sys
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # inherited, as from `cmd &` in a script
        from loraflow.cli import main
        main(["config", "check", sys.argv[1]])
        print("handled" if signal.getsignal(signal.SIGINT) is signal.default_int_handler else "ignored")
    """)
    done = subprocess.run([sys.executable, "-c", program, str(REPO / "examples" / "tiny" / "pipeline.yaml")], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.stdout.strip().splitlines()[-1] == "handled", done.stderr[-2000:]


SERVER_PROGRAM = dedent("""
    import sys
    from loraflow.tasks.common.settings import configure_environment
    configure_environment()
    from loraflow.cli._prefect_server import use_own_temporary_server
    from prefect.server.api.server import SubprocessASGIServer
    use_own_temporary_server()
    server = SubprocessASGIServer()  # what Prefect's client asks for when no PREFECT_API_URL is set
    server.start()
    print(server.server_process.pid, server.api_url, flush=True)
    if sys.argv[1] == "stop":
        sys.stdin.readline()  # the test says when
    else:
        import time; time.sleep(3600)  # killed by the test
""")


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["stop", "kill -9"])
def test_the_temporary_server_ignores_group_signals_and_ends_with_the_cli(processes, ending):  # noqa: F811
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cli = processes.start([sys.executable, "-c", SERVER_PROGRAM, "stop" if ending == "stop" else "kill"], cwd=REPO,
                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid, api_url = cli.stdout.readline().split()
    server = psutil.Process(int(pid))
    assert server.ppid() == cli.pid and os.getsid(server.pid) != os.getsid(cli.pid)  # its child, in its own session

    assert os.getpgid(server.pid) != os.getpgid(cli.pid)  # a Ctrl-C or `timeout` to the CLI's group never reaches it
    for number in (signal.SIGINT, signal.SIGTERM):  # and one that does (systemd signals the whole cgroup) is ignored
        os.kill(server.pid, number)
    time.sleep(2)
    assert server.is_running() and httpx.get(f"{api_url}/health", timeout=30).status_code == 200

    if ending == "stop":
        cli.stdin.write("\n")
        cli.stdin.flush()  # the CLI exits; its atexit stops the server (stdin closed, then killed if it lingers)
        assert cli.wait(60) == 0
    else:
        os.kill(cli.pid, signal.SIGKILL)  # no atexit at all: the server sees its stdin close and stops by itself
        cli.wait(10)
    assert not alive([server], wait_s=30), "the temporary server outlived the CLI"
