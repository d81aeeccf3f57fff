"""`loraflow deploy`: create the work pool(s) and register the deployments their workers can run."""
import os
import subprocess
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add `deploy`."""
    parser = subparsers.add_parser("deploy", help="create the loraflow work pool(s) and register their deployments with the Prefect server")
    parser.add_argument("--pool", action="append", choices=["process", "docker", "kubernetes"], default=None,
                        help="work pool kind to set up (repeatable; default: process, the one a local worker runs)")
    parser.add_argument("--prefect-file", default="deployments/prefect.yaml", help="deployment file (default deployments/prefect.yaml)")
    parser.add_argument("--project-dir", help="where process workers find this repository (default $LORAFLOW_PROJECT_DIR, "
                        "else the current directory; /app for the docker compose worker)")
    parser.set_defaults(handler=handle_deploy)


def handle_deploy(args) -> int:
    """Create each missing pool, then one `prefect deploy` of the deployments of those pools."""
    from loraflow.tasks.common.work_pools import POOL_TYPES, pool_deployments
    from loraflow.tasks.common.errors import LoraflowError

    api = os.environ.get("PREFECT_API_URL")
    if not api:
        raise LoraflowError("loraflow deploy needs a running Prefect server: start one (`prefect server start`) and set "
                            "PREFECT_API_URL=http://127.0.0.1:4200/api")
    if not Path(args.prefect_file).is_file():
        raise LoraflowError(f"{args.prefect_file} does not exist; run loraflow deploy from the repository root")
    names: list[str] = []
    for kind in args.pool or ["process"]:
        pool, deployments = pool_deployments(args.prefect_file, kind)
        print(f"work pool {pool} ({kind}): {'created' if _ensure_pool(pool, POOL_TYPES[kind]) else 'exists'}; "
              f"deployments: {', '.join(deployments)}")
        names += deployments
    env = {**os.environ, "LORAFLOW_PROJECT_DIR": args.project_dir or os.environ.get("LORAFLOW_PROJECT_DIR") or str(Path.cwd())}
    command = [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--prefect-file", args.prefect_file]
    for name in names:
        command += ["--name", name]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise LoraflowError(f"prefect deploy failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")
    print(f"registered {len(names)} deployment(s) at {api}; start a worker: prefect worker start --pool "
          + " / ".join(pool_deployments(args.prefect_file, kind)[0] for kind in args.pool or ["process"]))
    return 0


def _ensure_pool(name: str, pool_type: str) -> bool:
    """Create the work pool with its type's default job template unless it exists; True when created."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    async def ensure() -> bool:
        async with get_client() as client:
            try:
                await client.read_work_pool(name)
                return False
            except ObjectNotFound:
                template = await get_default_base_job_template_for_infrastructure_type(pool_type)
                await client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template or {}))
                return True

    return asyncio.run(ensure())
