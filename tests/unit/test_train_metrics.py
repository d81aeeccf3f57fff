"""The deferred-metrics SFT trainer logs exactly what trl's SFTTrainer logs, on one process and under DDP (gloo, CPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loraflow.tasks.common.jsonl import write_jsonl

REPO = Path(__file__).resolve().parents[2]
TIMING_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos")


def _records(n: int) -> list[dict]:
    return [{"id": f"r{i}", "metadata": {}, "messages": [
        {"role": "user", "content": f"ticket {i}: " + "my invoice is wrong " * (1 + i % 5)},
        {"role": "assistant", "content": json.dumps({"category": "billing", "n": i % 3})}]} for i in range(n)]


def run_both(model_path: str, train_jsonl: str, out_dir: str) -> dict[str, list[dict]]:
    """Train the tiny model twice from the same seed, with trl's SFTTrainer and with the deferred one; their logs."""
    import datasets
    import torch
    from transformers import AutoTokenizer, set_seed
    from trl import SFTTrainer

    from loraflow.schemas.config import LoraConfig, TrainConfig
    from loraflow.tasks.common.jsonl import read_jsonl
    from loraflow.tasks.training.launch import world_size
    from loraflow.tasks.training.train import build_trainer, load_model, to_prompt_completion
    from loraflow.tasks.training.train_metrics import DeferredMetricsSFTTrainer

    torch.use_deterministic_algorithms(True)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    examples = datasets.Dataset.from_list(to_prompt_completion(read_jsonl(train_jsonl)))
    # 2 micro-batches per step (per rank), logged at step 1 and every 2 steps (logging_first_step)
    train = TrainConfig(method="lora", micro_batch_size=2, effective_batch_size=4 * world_size(), max_steps=6,
                        logging_steps=2, learning_rate=1e-3, warmup_ratio=0.0, save_steps=1000)
    logs = {}
    for name, cls in (("trl", SFTTrainer), ("deferred", DeferredMetricsSFTTrainer)):
        set_seed(7)
        model = load_model(model_path, "lora", "cpu", False, False)
        trainer = build_trainer(model, tokenizer, train, LoraConfig(r=4), 96, Path(out_dir) / name, False, examples,
                                world_size=world_size())
        assert type(trainer) is DeferredMetricsSFTTrainer
        trainer.__class__ = cls  # the same trainer set-up; only the class whose compute_loss and log run differs
        gathers = []
        gather = trainer.accelerator.gather_for_metrics
        trainer.accelerator.gather_for_metrics = lambda *a, **k: gathers.append(1) or gather(*a, **k)
        trainer.train()
        logs[name] = [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in trainer.state.log_history]
        logs[f"{name}_gathers"] = len(gathers)
    return logs


def test_build_trainer_uses_the_deferred_trainer_and_logs_exactly_what_trl_logs(tiny_model_path, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", _records(24))
    logs = run_both(str(tiny_model_path), str(tmp_path / "train.jsonl"), str(tmp_path))
    train_lines = [h for h in logs["deferred"] if "loss" in h]
    assert len(train_lines) == 4 and all({"entropy", "mean_token_accuracy", "num_tokens"} <= set(h) for h in train_lines)
    assert logs["deferred"] == logs["trl"]  # every value identical, not close
    assert logs["trl_gathers"] == 6 * 2 * 4 and logs["deferred_gathers"] == 0  # trl: 4 per micro-batch
    assert train_lines[-1]["num_tokens"] > train_lines[0]["num_tokens"] > 0


def test_under_ddp_the_metrics_gathered_once_per_log_equal_trls_per_micro_batch_gathers(tiny_model_path, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", _records(48))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "logs.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               str(tiny_model_path), str(tmp_path / "train.jsonl"), str(tmp_path), str(out)]
    done = subprocess.run(command, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = json.loads(out.read_text())
    lines = [h for h in logs["deferred"] if "loss" in h]
    assert len(lines) == 4 and logs["deferred"] == logs["trl"]
    assert logs["trl_gathers"] == 6 * 2 * 4 and logs["deferred_gathers"] == 0
    # tokens are counted over both ranks: each rank trains 4 micro-batches of 2 examples per step
    assert lines[0]["num_tokens"] > 0


if __name__ == "__main__":  # one rank of the DDP test, started by torchrun
    result = run_both(*sys.argv[1:4])
    if int(os.environ.get("RANK", "0")) == 0:
        Path(sys.argv[4]).write_text(json.dumps(result))
