"""Shared helpers for the training-watch tests: a tiny model and a real trl SFTTrainer around it."""
import random
from pathlib import Path

from loraflow.schemas.config.train import TrainConfig


def records(n: int = 30, bad: bool = False) -> list[dict]:
    """Short distinct question/answer records; with bad=True one extra record whose answer is random characters."""
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "ok"}],
             "metadata": {}} for i in range(n)]
    if bad:
        rng = random.Random(0)
        noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(120))
        rows.append({"id": "bad", "messages": [{"role": "user", "content": "question 99"}, {"role": "assistant", "content": noise}],
                     "metadata": {}})
    return rows


def tiny_model(cache: Path, rows: list[dict]) -> str:
    """The lead's tiny random Llama with a tokenizer trained on the records' texts."""
    from loraflow.tasks.common.base_model import build_tiny_model

    return str(build_tiny_model(cache, [m["content"] for r in rows for m in r["messages"]]))


def make_trainer(model_path: str, rows: list[dict], out_dir: Path, train: TrainConfig, callbacks: list, save_steps: int | None = None):
    """A real SFTTrainer (LoRA on the CPU) built the way tasks/training/train.py builds it."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from loraflow.tasks.training.train import load_model, to_prompt_completion
    from loraflow.tasks.training.trainer_args import build_sft_config

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    examples = to_prompt_completion(rows)
    args = build_sft_config(train, 256, out_dir, False, len(examples), False)
    args.save_strategy = "steps" if save_steps else "no"
    args.save_steps = save_steps or 500
    args.save_total_limit = None
    model = load_model(model_path, "lora", "cpu", False, False)
    return SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM"), callbacks=callbacks,
    )
