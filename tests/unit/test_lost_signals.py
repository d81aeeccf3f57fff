"""A SIGTERM or Ctrl-C whose exception Python drops (it arrived inside a garbage-collector callback) is sent again."""
import signal
import subprocess
import sys
from textwrap import dedent

import pytest
from prefect.exceptions import TerminationSignal

from loraflow.cli import Terminated
from loraflow.tasks.common.lost_signals import interrupt_signal
from tests.conftest import REPO

# A process whose SIGTERM handler raises (as Prefect's does inside a flow) and which receives its SIGTERM while a
# finalizer runs: the exception is raised inside the callback, where Python can only print "Exception ignored".
PROGRAM = dedent("""
    import os, signal, sys, time, weakref
    if sys.argv[1] == "hook":
        from loraflow.tasks.common.lost_signals import redeliver_dropped_interrupts
        redeliver_dropped_interrupts()

    class Stop(BaseException):
        signal = signal.SIGTERM

    def handler(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, handler)

    def cleanup():
        os.kill(os.getpid(), signal.SIGTERM)
        total = 0
        for i in range(100_000):  # the handler runs at one of these bytecodes, still inside the callback
            total += i

    class Resource:
        pass

    resource = Resource()
    weakref.finalize(resource, cleanup)
    del resource
    try:
        for _ in range(50):
            time.sleep(0.1)
        print("ran to the end")
    except Stop:
        print("stopped")
""")


def run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_without_the_hook_python_drops_the_interrupt():
    """The control: this is the failure the hook exists for (the run goes on after its SIGTERM)."""
    done = run("plain")
    assert done.stdout.strip() == "ran to the end"
    assert "Exception ignored" in done.stderr and "Stop" in done.stderr


def test_with_the_hook_the_dropped_interrupt_is_sent_again_and_stops_the_process():
    done = run("hook")
    assert done.stdout.strip() == "stopped"
    assert "SIGTERM arrived inside a cleanup callback" in done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr  # one line, not a traceback


@pytest.mark.parametrize(("error", "expected"), [
    (TerminationSignal(signal.SIGTERM), signal.SIGTERM),
    (Terminated(), signal.SIGTERM),
    (KeyboardInterrupt(), signal.SIGINT),
    (ValueError("an ordinary error in a callback"), None),
    (SystemExit(0), None),
    (None, None),
])
def test_which_exceptions_count_as_a_dropped_interrupt(error, expected):
    assert interrupt_signal(error) == expected
