"""deployments/prefect.yaml read by `loraflow deploy`: which deployments each work pool runs."""
import pytest

from loraflow.tasks.common.work_pools import PREFECT_FILE, pool_deployments
from loraflow.tasks.common.errors import LoraflowError
from tests.conftest import REPO


def test_each_pool_kind_names_its_pool_and_only_its_deployments():
    pool, names = pool_deployments(REPO / PREFECT_FILE, "process")
    assert pool == "loraflow-process"
    assert names == ["finetune", "data", "evaluate", "sweep", "promote", "rollback", "retrain-from-feedback", "monitor"]
    assert pool_deployments(REPO / PREFECT_FILE, "docker") == ("loraflow-docker", ["finetune-docker", "retrain-from-feedback-docker"])
    assert pool_deployments(REPO / PREFECT_FILE, "kubernetes") == ("loraflow-k8s", ["finetune-k8s", "retrain-from-feedback-k8s"])
    with pytest.raises(LoraflowError, match="defines no work pool 'ecs'.*docker, kubernetes, process"):
        pool_deployments(REPO / PREFECT_FILE, "ecs")
