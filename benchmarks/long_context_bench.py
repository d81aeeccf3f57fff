#!/usr/bin/env python3
"""Long context per card (issue 27, item 3): the longest sequence that trains one step at batch 1, measured for
loraflow's stack and the plain QLoRA stack in one process on one card, beside the estimate's prediction.

Both train a random-weight model of a real shape (Llama-3.1-8B by default) on random tokens, quantized to NF4:
- loraflow: `load_model` + `build_trainer` (trl SFTTrainer and its fused LM head, gradient checkpointing with
  `train.offload_activations: true`, loraflow's QLoRA defaults, compiled layers unless --no-compile);
- plain: benchmarks/baseline_stack.py (peft's prepare_model_for_kbit_training, full logits, paged 8-bit AdamW).
The length doubles from --start until a step fails (CUDA out of memory) or --max-tokens, then bisects down to
--resolution tokens. Beside each stack: the estimate's longest sequence (tasks/planning/estimate_context.py) for the
card and the measured / predicted ratio; beside each trial the estimate's peak at that length.

GPU:  python3 benchmarks/long_context_bench.py                      ($OUT/long_context_bench.json, a table last)
CPU:  python benchmarks/long_context_bench.py --cpu --shape micro --start 256 --max-tokens 1024 --resolution 256
      --card-gib 1 --budget 300   (logic check only: seconds per step on a loaded 2-core CPU)
"""
import argparse
import copy
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

T0 = time.perf_counter()
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--cpu", action="store_true", help="run on the CPU (a logic check: the card size is --card-gib)")
ap.add_argument("--shape", default="llama31-8b", choices=["llama31-8b", "llama2-7b", "1b", "tiny", "micro"],
                help="micro: 2 layers of 64, vocabulary 512 (the CPU check)")
ap.add_argument("--stacks", default="loraflow,plain")
ap.add_argument("--start", type=int, default=16384, help="first length tried (tokens)")
ap.add_argument("--max-tokens", type=int, default=1 << 20, help="the search stops here")
ap.add_argument("--resolution", type=int, default=4096, help="bisection stops when the bounds are this close")
ap.add_argument("--no-compile", action="store_true", help="loraflow without compiled decoder layers")
ap.add_argument("--card-gib", type=float, default=None, help="card size for the prediction (default: the GPU's)")
ap.add_argument("--host-gib", type=float, default=None, help="host memory for the prediction (default: this machine's)")
ap.add_argument("--budget", type=float, default=560.0, help="seconds; no new trial starts past it")
ap.add_argument("--json", default=None, help="output JSON (default $OUT/long_context_bench.json)")
args = ap.parse_args()

import torch  # noqa: E402

import baseline_stack as base  # noqa: E402
from bench_common import RANDOM_SHAPES, machine, token_id_tokenizer  # noqa: E402
from loraflow.schemas.config.lora import LoraConfig  # noqa: E402
from loraflow.schemas.config.train import TrainConfig  # noqa: E402
from loraflow.tasks.planning.estimate import estimate_resources  # noqa: E402
from loraflow.tasks.planning.estimate_context import PLAIN_QLORA_RECIPE, host_memory_gib, longest_sequence  # noqa: E402

DEV = "cpu" if args.cpu else "cuda"
OUT = Path(args.json) if args.json else Path(os.environ.get("OUT") or "bench_out") / "long_context_bench.json"
OUT.parent.mkdir(parents=True, exist_ok=True)
LORA = LoraConfig(r=16, alpha=32, target_modules=base.TARGETS)  # the plain stack's LoRA shape, loraflow's dropout (0)
R: dict = {"argv": sys.argv[1:], "machine": machine(), "stacks": [], "errors": []}


def log(*a):
    print(f"[{time.perf_counter() - T0:6.1f}s]", *a, flush=True)


def save():
    OUT.write_text(json.dumps(R, indent=1, default=str))


def make_config():
    """The model shape as a LlamaConfig (Llama-3.1-8B: 32 layers of 4096, GQA 32/8, 14336 MLP, 128256 vocabulary)."""
    from transformers import LlamaConfig

    if args.shape == "tiny":
        return base.make_config(True)
    if args.shape == "micro":
        return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=512, max_position_embeddings=4096, use_cache=False)
    if args.shape == "llama2-7b":
        return base.make_config(False)
    shape = RANDOM_SHAPES["1b"] if args.shape == "1b" else dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0)
    return LlamaConfig(max_position_embeddings=131072, rms_norm_eps=1e-5, use_cache=False, **shape)


def free() -> None:
    """Collect garbage and hand cached device and pinned host blocks back (a failed long step leaves both behind)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        if hasattr(torch._C, "_host_emptyCache"):
            torch._C._host_emptyCache()
        torch.cuda.reset_peak_memory_stats()


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def tokens(length: int, vocab: int) -> list[int]:
    return torch.randint(3, vocab, (length,), generator=torch.Generator().manual_seed(length)).tolist()


class LoraflowStack:
    """loraflow's path: the NF4 model once, then one build_trainer + one optimizer step per length."""

    name = "loraflow"

    def __init__(self, cfg):
        from loraflow.tasks.training.speed import resolve_speed
        from loraflow.tasks.training.train import load_model

        self.cfg = cfg
        first = self.train_config()
        speed = resolve_speed(first, DEV)
        state = base.random_state_dict(cfg, DEV)
        self.model = load_model(None, "qlora", DEV, DEV == "cuda", True, attn_implementation=speed.attn_implementation,
                                qlora_fp32=first.qlora_fp32, config=copy.deepcopy(cfg), state_dict=state)
        del state
        free()

    def train_config(self) -> TrainConfig:
        return TrainConfig(method="qlora", micro_batch_size=1, effective_batch_size=1, max_steps=1, save_steps=10**6,
                           gradient_checkpointing=True, offload_activations=True, unchecked_layers=0, warmup_ratio=0.0,
                           learning_rate=base.LR, compile_layers=False if args.no_compile else None, logging_steps=1)

    def settings(self) -> dict:
        train = self.train_config()
        return {"qlora_fp32": train.qlora_fp32, "optimizer": train.optimizer, "lora_dropout": LORA.dropout,
                "fused_lm_head": True, "offload_activations": True}

    def step(self, length: int) -> None:
        import datasets

        from loraflow.tasks.training.speed import resolve_speed
        from loraflow.tasks.training.train import build_trainer

        train = self.train_config()
        speed = resolve_speed(train, DEV, self.cfg.to_dict(), length, LORA)
        data = datasets.Dataset.from_dict({"input_ids": [tokens(length, self.cfg.vocab_size)]})
        with tempfile.TemporaryDirectory() as tmp:
            trainer = build_trainer(self.model, token_id_tokenizer(), train, LORA, length, Path(tmp), DEV == "cuda", data,
                                    speed=speed)
            try:
                trainer.train()
            finally:
                self.model = trainer.model  # the peft model, reused for the next length
                trainer.optimizer = None
                del trainer
                self.model.zero_grad(set_to_none=True)


class PlainStack:
    """benchmarks/baseline_stack.py's model and loop, one optimizer step per length."""

    name = "plain"

    def __init__(self, cfg):
        self.cfg = cfg
        self.model = base.build_baseline(cfg, DEV)

    def settings(self) -> dict:
        return dict(PLAIN_QLORA_RECIPE)

    def step(self, length: int) -> None:
        ids = torch.tensor([tokens(length, self.cfg.vocab_size)])
        try:
            base.run_baseline(self.model, [{"input_ids": ids, "labels": ids}], 0, DEV)
        finally:
            self.model.zero_grad(set_to_none=True)


def trial(stack, length: int, card_gib: float) -> dict:
    """One optimizer step at `length` tokens: whether it ran, the peak allocated GiB, and the estimate's peak there."""
    free()
    started = time.perf_counter()
    row = {"tokens": length, "ok": True, "error": None}
    try:
        stack.step(length)
    except Exception as error:  # noqa: BLE001 - an out-of-memory step is the answer; anything else is recorded too
        row.update(ok=False, error=repr(error)[:300], oom=is_oom(error))
    row["seconds"] = round(time.perf_counter() - started, 2)
    row["peak_alloc_gib"] = torch.cuda.max_memory_allocated() / base.GIB if DEV == "cuda" else None
    row["estimated_peak_gib"] = estimate_resources(stack.cfg.to_dict(), "qlora", LORA.r, length, 1, True, 0, 1.0, card_gib,
                                                   target_modules=base.TARGETS, **stack.settings()).peak_gpu_memory_gib
    free()
    log(f"{stack.name:9s} {length:>9,} tokens  {'ok ' if row['ok'] else 'FAIL'}  peak {row['peak_alloc_gib'] or 0:6.2f} "
        f"GiB (estimate {row['estimated_peak_gib']:6.2f})  {row['seconds']:.1f} s  {row['error'] or ''}"[:240])
    return row


def search(stack, card_gib: float) -> dict:
    """Double from --start until a step fails or --max-tokens, then bisect to --resolution; the longest that ran."""
    rows, good, bad = [], 0, None
    length = args.start
    while length <= args.max_tokens and time.perf_counter() - T0 < args.budget:
        rows.append(trial(stack, length, card_gib))
        if not rows[-1]["ok"]:
            bad = length
            break
        good, length = length, length * 2
    while bad is not None and bad - good > args.resolution and time.perf_counter() - T0 < args.budget:
        middle = (good + bad) // 2 // 256 * 256
        rows.append(trial(stack, middle, card_gib))
        good, bad = (middle, bad) if rows[-1]["ok"] else (good, middle)
    capped = bad is None
    return {"trials": rows, "longest_measured": good, "first_failed": bad,
            "note": "capped by --max-tokens or the budget: a lower bound" if capped else "bracketed"}


def main():
    cfg = make_config()
    card = args.card_gib or (torch.cuda.get_device_properties(0).total_memory / base.GIB if DEV == "cuda" else 80.0)
    host = args.host_gib if args.host_gib is not None else host_memory_gib()
    R.update(shape=args.shape, model_config=cfg.to_dict(), card_gib=card, host_gib=host)
    for name in (s for s in args.stacks.split(",") if s):
        predicted = longest_sequence(cfg.to_dict(), card, name, lora_r=LORA.r, target_modules=base.TARGETS,
                                     host_memory_gib=host, **({} if name == "plain" else
                                                              {"qlora_fp32": "none", "lora_dropout": LORA.dropout}))
        entry = {"stack": name, "predicted": predicted.to_dict()}
        R["stacks"].append(entry)
        try:
            stack = (LoraflowStack if name == "loraflow" else PlainStack)(cfg)
            entry.update(search(stack, card))
            del stack
        except Exception as error:  # noqa: BLE001 - keep the other stack's numbers
            R["errors"].append({"stack": name, "error": repr(error)[:500]})
            log("ERROR", name, repr(error)[:300])
        free()
        measured = entry.get("longest_measured")
        entry["measured_over_predicted"] = measured / predicted.tokens if measured and predicted.tokens else None
        save()


def table():
    print("\n" + "=" * 100)
    print(R["machine"])
    print(f"shape {R.get('shape')}, card {R.get('card_gib') or 0:.1f} GiB, host {R.get('host_gib') or 0:.0f} GiB")
    print(f"{'stack':10s} {'measured':>10s} {'first failed':>13s} {'predicted':>10s} {'ratio':>6s}  note")
    for s in R["stacks"]:
        ratio = s.get("measured_over_predicted")
        print(f"{s['stack']:10s} {s.get('longest_measured') or 0:>10,} {s.get('first_failed') or 0:>13,} "
              f"{s['predicted']['tokens']:>10,} {ratio or 0:6.2f}  {s.get('note', '')}")
    print("errors:", R["errors"], "| total s:", round(time.perf_counter() - T0, 1))


if __name__ == "__main__":
    rc = 0
    try:
        main()
    except BaseException as e:  # noqa: BLE001 - keep what was measured
        R["errors"].append({"where": "main", "error": repr(e)[:500]})
        rc = 1
    R["total_s"] = time.perf_counter() - T0
    save()
    table()
    sys.exit(rc)
