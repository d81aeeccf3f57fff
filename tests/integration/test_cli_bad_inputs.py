"""Issue 24, items 4-6: every bad input gets one line naming the path or option, and the input file is checked before
any Prefect server starts (so these take seconds, not minutes)."""
import gzip
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.integration.test_cli_errors import TINY, assert_one_line_error, loraflow

SERVER_STARTED = "Starting temporary server"


def loraflow_without_root_override(*args: str) -> subprocess.CompletedProcess:
    """The CLI as root without the capability to read any file: so a mode-000 file is unreadable, as for a user."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        command = [sys.executable, "-m", "loraflow.cli", *args]
    elif setpriv:
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m", "loraflow.cli", *args]
    else:
        pytest.skip("running as root without setpriv: every file is readable")
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.fixture
def unreadable(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("task_card: {name: x}\n")
    path.chmod(0)
    yield path
    path.chmod(0o600)


@pytest.fixture
def loop(tmp_path):
    (tmp_path / "a.jsonl").symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "a.jsonl")
    return tmp_path / "a.jsonl"


# --- feedback serve -------------------------------------------------------------------------------------------------

def test_feedback_serve_with_an_unknown_database_kind(tmp_path):
    result = loraflow("feedback", "serve", "--insecure-no-auth", "--database-url", "nosuchdb://x/y")
    assert_one_line_error(result, "nosuchdb://x/y", "--database-url")


def test_feedback_serve_with_a_database_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    result = loraflow("feedback", "serve", "--insecure-no-auth", "--database-url", f"sqlite:///{tmp_path}/file/sub/f.db")
    assert_one_line_error(result, "cannot create the folder", f"{tmp_path}/file/sub")


@pytest.mark.parametrize("port", ["99999", "0"])
def test_feedback_serve_with_a_port_out_of_range(port):
    assert_one_line_error(loraflow("feedback", "serve", "--insecure-no-auth", "--port", port), "--port")


# --- config check ---------------------------------------------------------------------------------------------------

def test_config_check_of_a_binary_file(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(loraflow("config", "check", str(binary)), str(binary), "not UTF-8 text")


def test_config_check_of_a_directory(tmp_path):
    assert_one_line_error(loraflow("config", "check", str(tmp_path)), str(tmp_path), "is a directory")


def test_config_check_of_an_unreadable_file(unreadable):
    result = loraflow_without_root_override("config", "check", str(unreadable))
    assert_one_line_error(result, str(unreadable), "cannot be read", "Permission denied")


def test_config_check_of_a_symlink_loop(loop):
    assert_one_line_error(loraflow("config", "check", str(loop)), str(loop), "loops back on itself")


def test_config_check_of_a_dangling_symlink(tmp_path):
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    assert_one_line_error(loraflow("config", "check", str(link)), str(link), "gone.yaml", "does not exist")


# --- loraflow data: the input and --out, checked before Prefect starts -----------------------------------------------

def data(*args: str, out=None) -> subprocess.CompletedProcess:
    return loraflow("data", TINY, "--out", str(out), *args)


def test_data_on_an_unreadable_input(tmp_path):
    secret = tmp_path / "in.jsonl"
    shutil.copy(REPO / "examples" / "quickstart" / "tickets.jsonl", secret)
    secret.chmod(0)
    try:
        result = loraflow_without_root_override("data", TINY, "--input", str(secret), "--out", str(tmp_path / "out"))
    finally:
        secret.chmod(0o600)
    assert_one_line_error(result, str(secret), "cannot be read")
    assert SERVER_STARTED not in result.stderr


def test_data_with_out_an_existing_file(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    result = data(out=taken)
    assert_one_line_error(result, "--out", str(taken), "is a file")
    assert SERVER_STARTED not in result.stderr


def test_data_on_a_symlink_loop(tmp_path, loop):
    result = data("--input", str(loop), out=tmp_path / "out")
    assert_one_line_error(result, str(loop), "loops back on itself")
    assert "does not exist" not in result.stderr


@pytest.mark.parametrize("name", ["tickets.jsonl", "tickets.jsonl.gz"])
def test_a_gzip_input_is_named_gzip_before_anything_starts(tmp_path, name):
    packed = tmp_path / name
    packed.write_bytes(gzip.compress((REPO / "examples" / "quickstart" / "tickets.jsonl").read_bytes()))
    result = data("--input", str(packed), out=tmp_path / "out")
    assert_one_line_error(result, str(packed), "compressed with gzip", "gunzip")
    assert SERVER_STARTED not in result.stderr


def test_an_empty_input_fails_before_anything_starts(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = data("--input", str(empty), out=tmp_path / "out")
    assert_one_line_error(result, str(empty), "empty")
    assert SERVER_STARTED not in result.stderr


@pytest.mark.parametrize("pilot", ["0", "-1"])
def test_a_pilot_of_zero_is_refused_like_a_negative_one(tmp_path, pilot):
    result = data("--pilot", pilot, out=tmp_path / "out")
    assert_one_line_error(result, "data.pilot")
    assert SERVER_STARTED not in result.stderr
