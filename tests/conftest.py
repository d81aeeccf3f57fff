"""Shared test set-up: offline hub, embedded stores in a temp folder, GPU and Postgres markers, fixtures."""
import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(os.environ.get("LORAFLOW_HOME") or tempfile.mkdtemp(prefix="loraflow-test-"))
os.environ["LORAFLOW_HOME"] = str(_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_HOME / 'mlflow.db'}"

from loraflow.tasks.common.settings import configure_environment  # noqa: E402

configure_environment()

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests without CUDA and `postgres` tests without LORAFLOW_TEST_POSTGRES_URL."""
    import torch

    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    no_pg = pytest.mark.skip(reason="set LORAFLOW_TEST_POSTGRES_URL (.ci/run does) to run Postgres tests")
    for item in items:
        # markers only: item.keywords also holds test names and parameter ids (a config called "gpu", say)
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if item.get_closest_marker("postgres") and not os.environ.get("LORAFLOW_TEST_POSTGRES_URL"):
            item.add_marker(no_pg)


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for the session (flows run against it, results persisted)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """A tiny random Llama with a ChatML byte-level BPE tokenizer, built once per session."""
    from loraflow.tasks.common.base_model import build_tiny_model

    texts = ["Extract the support ticket as JSON.", '{"category": "billing", "priority": "high", "product": "CloudDrive"}',
             "我的云盘订单还没到。", "Hello, please help me with my account."]
    return build_tiny_model(_HOME / "models" / "tiny-random", texts)
