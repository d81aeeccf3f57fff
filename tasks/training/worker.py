"""One DDP worker process: torchrun starts `python -m loraflow.tasks.training.worker SPEC.json` once per GPU."""
import json
import sys
from pathlib import Path

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results import TrackingRun
from loraflow.tasks.training.launch import local_rank, rank


def run_worker(spec_path: str) -> None:
    """One DDP or FSDP worker: train_model with this process's GPU; rank 0 writes the result file."""
    import torch

    from loraflow.tasks.common.errors import LoraflowError
    from loraflow.tasks.training.train import train_model

    spec = json.loads(Path(spec_path).read_text())
    torch.cuda.set_device(local_rank())
    if spec["train"].get("distributed") == "fsdp":
        from loraflow.tasks.training.distributed import start_fsdp_worker

        start_fsdp_worker()
    callbacks = []
    if spec["mlflow"] and rank() == 0:
        from loraflow.tasks.tracking.runs import MlflowMetricsCallback

        callbacks.append(MlflowMetricsCallback(TrackingRun.from_dict(spec["mlflow"])))
    try:
        trained = train_model(spec["model_path"], spec["train_path"], spec["val_path"], LoraConfig(**spec["lora"]),
                              TrainConfig(**spec["train"]), spec["max_length"], spec["out_dir"], callbacks)
        result = trained.model_dump_json(indent=1)  # launch.py reads it back as a TrainingResult
    except LoraflowError as error:  # a user mistake: hand the one-line message back to the launching process
        result = json.dumps({"error": str(error)})
    if rank() == 0:
        Path(spec["result_path"]).write_text(result)


if __name__ == "__main__":
    run_worker(sys.argv[1])
