"""Processes a test starts: each in its own process group, and every one of them (with all it started) gone when the
test ends, passed or failed, so a failed test never leaves a training run or a server behind."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest


class Processes:
    """Starts processes for one test and kills them, their groups and their descendants at its end."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []
        self.known: dict[int, psutil.Process] = {}

    def start(self, command: list[str], *, log=None, ignore_sigint: bool = False, **kwargs) -> subprocess.Popen:
        """Start `command` as the leader of a new process group (and session).

        ignore_sigint: start it with SIGINT ignored, as a shell script's background job (`cmd &`) or a CI runner
        starts its commands.
        """
        preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        if log is not None:
            kwargs.update(stdout=log, stderr=subprocess.STDOUT)
        proc = subprocess.Popen(command, start_new_session=True, preexec_fn=preexec, **kwargs)
        self.started.append(proc)
        self.remember(proc.pid)
        return proc

    def burner(self) -> subprocess.Popen:
        """A process that keeps one core busy (it inherits this process's niceness)."""
        return self.start([sys.executable, "-c", "while True: pass"])

    def remember(self, pid: int) -> list[psutil.Process]:
        """Note pid and everything it has started so far (a child in another session too); returns the descendants."""
        try:
            root = psutil.Process(pid)
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for process in [root, *children]:
            self.known.setdefault(process.pid, process)
        return children

    def kill_all(self) -> None:
        for proc in self.started:
            self.remember(proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for process in self.known.values():
            try:
                process.kill()
            except psutil.Error:
                pass
        for proc in self.started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


def alive(processes: list[psutil.Process], wait_s: float = 5.0) -> list[psutil.Process]:
    """Those of `processes` still running after up to wait_s seconds (zombies count as gone)."""
    deadline = time.monotonic() + wait_s
    while True:
        running = [p for p in processes if _running(p)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def processes():
    """Start processes through this; all of them, their groups and descendants are killed when the test ends."""
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.kill_all()
