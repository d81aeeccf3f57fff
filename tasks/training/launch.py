"""Training on several GPUs: train_model re-runs itself under torchrun, one DDP or FSDP process per GPU.

`python -m loraflow.tasks.training.worker SPEC.json` is the entry point torchrun starts in each worker; the launching
process waits, then reads the result rank 0 wrote. Callbacks cannot cross processes: the MLflow live-metrics callback
is rebuilt in rank 0 from its run handle; others (e.g. Prefect progress) stay behind and are noted in the log.
"""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results import TrackingRun, TrainingResult
from loraflow.tasks.common.device import gpu_count
from loraflow.tasks.common.settings import import_root

logger = logging.getLogger("loraflow.train")
# NVLink multicast (NVLS) can take a shared host's GPUs out of service; keep it off in every worker.
SAFE_NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def world_size() -> int:
    """Processes in this training job (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's GPU index on its host (0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def gpus_for(train: TrainConfig) -> int:
    """GPUs to train on: train.num_gpus capped at the visible ones, else all visible; 0 without CUDA."""
    visible = gpu_count()
    return min(train.num_gpus or visible, visible)


def torchrun_command(spec_path: Path, nproc: int) -> list[str]:
    """The torchrun command line that starts one worker per GPU on this host."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "loraflow.tasks.training.worker", str(spec_path)]


def launch_training(model_path: str, train_path: str, val_path: str | None, lora: LoraConfig, train: TrainConfig,
                    max_length: int, out_dir: str, callbacks: list | None, nproc: int) -> TrainingResult:
    """Run train_model under torchrun on nproc GPUs and return rank 0's result."""
    from loraflow.tasks.training.distributed import resolve_distributed
    from loraflow.tasks.common.device import detect_device
    from loraflow.tasks.planning.estimate_shapes import load_model_config

    train = resolve_distributed(train, lora, load_model_config(model_path), max_length, detect_device()[1], nproc)
    launch_dir = RunFolder(out_dir).train / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    mlflow = next((c.run.to_dict() for c in callbacks or [] if isinstance(getattr(c, "run", None), TrackingRun)), None)
    left_behind = [type(c).__name__ for c in callbacks or [] if not isinstance(getattr(c, "run", None), TrackingRun)]
    if left_behind:
        logger.warning("DDP training: callbacks %s stay in the launching process and see no training events", left_behind)
    spec = {"model_path": model_path, "train_path": train_path, "val_path": val_path, "lora": lora.model_dump(mode="json"),
            "train": train.model_dump(mode="json"), "max_length": max_length, "out_dir": out_dir, "mlflow": mlflow,
            "result_path": str(launch_dir / "result.json")}
    spec_path = launch_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    Path(spec["result_path"]).unlink(missing_ok=True)
    env = {**os.environ, **SAFE_NCCL_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(import_root()), os.environ.get("PYTHONPATH")]))}
    # torchrun gives each worker one OpenMP thread unless told otherwise; the host work of a step (batch collation,
    # launches) then slows the ranks unevenly: 2 x H200 at 2048x2 scaled 1.47x with it, 1.77-1.93x with 8 (RESULTS.md)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logger.info("launching %s training on %d GPUs: %s", train.distributed.upper(), nproc,
                " ".join(torchrun_command(spec_path, nproc)))
    completed = subprocess.run(torchrun_command(spec_path, nproc), env=env)
    if completed.returncode != 0 or not Path(spec["result_path"]).is_file():
        raise RuntimeError(f"{train.distributed.upper()} training on {nproc} GPUs failed (exit {completed.returncode}); the workers' output is above")
    result = json.loads(Path(spec["result_path"]).read_text())
    if result.get("error"):  # the worker's one-line user error (worker.py)
        from loraflow.tasks.common.errors import LoraflowError

        raise LoraflowError(result["error"])
    return TrainingResult.model_validate(result)
