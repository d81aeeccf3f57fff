"""Which deployments of deployments/prefect.yaml belong to which work pool (read from the file; no prefect import)."""
from pathlib import Path

import yaml

from loraflow.tasks.common.errors import LoraflowError

PREFECT_FILE = Path("deployments") / "prefect.yaml"
# The pool kinds of prefect.yaml's `definitions.work_pools` and the worker type each needs.
POOL_TYPES = {"process": "process", "docker": "docker", "kubernetes": "kubernetes"}


def pool_deployments(prefect_file: str | Path, kind: str) -> tuple[str, list[str]]:
    """The work pool name of one kind (process, docker, kubernetes) and the deployments that run in it."""
    data = yaml.safe_load(Path(prefect_file).read_text(encoding="utf-8"))
    pools = (data.get("definitions") or {}).get("work_pools") or {}
    if kind not in pools:
        raise LoraflowError(f"{prefect_file} defines no work pool '{kind}' under definitions.work_pools; "
                            f"choose one of {', '.join(sorted(pools))}")
    name = pools[kind]["name"]
    names = [d["name"] for d in data.get("deployments", []) if (d.get("work_pool") or {}).get("name") == name]
    return name, names
