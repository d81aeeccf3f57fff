"""CPU training-step speed of the quickstart's levers, same process, interleaved: fp32 vs bf16 autocast, LoRA on every
layer vs the last N, micro-batch size. Real token ids from a train split (the quickstart's), padded per batch as the
trainer pads them; LoRA r=8 on every linear module of the adapted layers; AdamW; median step time after a warm-up.

    .venv/bin/python benchmarks/cpu_step_speed.py --data runs/quickstart/data/train.jsonl \\
        --model .loraflow/models/smollm2-135m-instruct --last-layers 10 --batches 2,8 --steps 4

Prints a Markdown table (tokens/s and the ratio to fp32/all layers at the same batch) and the machine line. Run it on a
quiet machine: the variants share the CPU in turns, so load hurts them alike, but it adds noise.
"""
import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def token_batches(path: str, tokenizer, size: int, count: int, seed: int = 0) -> list:
    """`count` batches of `size` chat-formatted training examples as padded id tensors (random draws, seeded)."""
    import torch

    records = [json.loads(line) for line in open(path, encoding="utf-8")]
    rng = random.Random(seed)
    batches = []
    for _ in range(count):
        texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rng.sample(records, size)]
        ids = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)["input_ids"]
        batches.append(ids.to(torch.long))
    return batches


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datetime import datetime, timezone

    from bench_common import machine, print_report  # benchmarks/ is on sys.path when run as a script
    from loraflow.tasks.training.lora_setup import last_layer_indices

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="runs/quickstart/data/train.jsonl")
    parser.add_argument("--model", default=".loraflow/models/smollm2-135m-instruct")
    parser.add_argument("--last-layers", type=int, default=10)
    parser.add_argument("--batches", default="2,8", help="micro-batch sizes to measure, comma-separated")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and batch size (after one warm-up)")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    models = {}
    for scope in ("all", "last"):
        base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        layers = last_layer_indices(base, args.last_layers) if scope == "last" else None
        models[scope] = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=modules,
                                                         layers_to_transform=layers, task_type="CAUSAL_LM"))
    header = machine()
    rows = []
    for size in [int(b) for b in args.batches.split(",")]:
        batches = token_batches(args.data, tokenizer, size, args.steps + 1)
        variants = [(scope, bf16) for scope in ("all", "last") for bf16 in (False, True)]
        times: dict = {v: [] for v in variants}
        optimizers = {v: torch.optim.AdamW([p for p in models[v[0]].parameters() if p.requires_grad], lr=1e-4) for v in variants}
        for i, ids in enumerate(batches):  # interleaved: every variant runs batch i before any runs batch i+1
            for variant in variants:
                scope, bf16 = variant
                started = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = models[scope](input_ids=ids, labels=ids).loss
                loss.backward()
                optimizers[variant].step()
                optimizers[variant].zero_grad()
                if i:  # the first batch warms up
                    times[variant].append((time.perf_counter() - started, ids.numel()))
        reference = None
        for variant in variants:
            seconds = statistics.median(t for t, _ in times[variant])
            tokens = statistics.median(n for _, n in times[variant])
            speed = tokens / seconds
            reference = reference or speed
            rows.append([str(size), "all layers" if variant[0] == "all" else f"last {args.last_layers} layers",
                         "bf16 autocast" if variant[1] else "fp32", f"{seconds:.2f}", f"{speed:.0f}", f"{speed / reference:.2f}x"])
    print_report("CPU training step speed", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", header,
                 ["micro-batch", "LoRA on", "precision", "median s/step", "tokens/s (padded)", "vs fp32, all layers"], rows)


if __name__ == "__main__":
    main()
