#!/usr/bin/env python3
"""GPU training benchmark: loraflow's training path against the plain QLoRA stack, same card, same process.

Both train a Llama-2-7B-shaped model with random weights on random tokens. loraflow's side goes through
loraflow.tasks.training.train.load_model + build_trainer (trl SFTTrainer, fused LM head, compiled decoder layers, packing), the functions
train_model uses; the baseline is benchmarks/baseline_stack.py (a copy of the plain stack whose H100 run is
benchmarks/results/qlora_baseline_h100.json).

GPU:  python3 benchmarks/train_bench.py            (writes $OUT/train_bench.json, prints a table last)
CPU:  python benchmarks/train_bench.py --cpu --tiny  (logic check only)
"""
import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

T0 = time.perf_counter()
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--cpu", action="store_true")
ap.add_argument("--tiny", action="store_true")
ap.add_argument("--settings", default="1024x8,2048x2", help="fixed shapes seq x micro-batch")
ap.add_argument("--peak", default="2048x1", help="shapes measured for peak memory (fewer steps)")
ap.add_argument("--ragged", default="1024x8", help="max length x micro-batch for ragged (short, uneven) examples")
ap.add_argument("--variants", default="loraflow,fp32_all,no_compile", help="loraflow variants after the default one")
ap.add_argument("--skip-baseline", action="store_true")
ap.add_argument("--packed-only", action="store_true", help="ragged: only the packed run")
ap.add_argument("--ragged-examples", default="", help="ragged, packed: examples per optimizer step (train."
                "effective_batch_size), comma-separated, one run each (default: micro-batch x --accumulate)")
ap.add_argument("--accumulate", type=int, default=1, help="loraflow: micro-batches per optimizer step, over all GPUs "
                "(train.effective_batch_size = micro-batch x this; under torchrun each GPU runs its share)")
ap.add_argument("--warm", type=int, default=3)
ap.add_argument("--meas", type=int, default=6)
ap.add_argument("--budget", type=float, default=540.0, help="seconds; later stages are skipped past it")
ap.add_argument("--json", default=None, help="output JSON (default $OUT/train_bench.json)")
ap.add_argument("--trl-metrics", action="store_true", help="train with trl's own SFTTrainer metrics (a gather and "
                "a host sync per metric per micro-batch) instead of loraflow's deferred ones: the A/B for DDP scaling")
ap.add_argument("--profile", action="store_true", help="profile 2 extra, untimed steps of each variant's first shape "
                "(kernel table to $OUT/profile_VARIANT_SHAPE.txt)")
args = ap.parse_args()

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

import baseline_stack as base  # noqa: E402
from bench_common import token_id_tokenizer  # noqa: E402
from loraflow.schemas.config.lora import LoraConfig  # noqa: E402
from loraflow.schemas.config.train import TrainConfig  # noqa: E402
from loraflow.tasks.training.speed import resolve_speed  # noqa: E402
from loraflow.tasks.training.train import build_trainer, load_model  # noqa: E402

DEV = "cpu" if args.cpu else "cuda"
if DEV == "cuda" and "LOCAL_RANK" in os.environ:
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
OUT = Path(args.json) if args.json else Path(os.environ.get("OUT") or "bench_out") / "train_bench.json"
OUT.parent.mkdir(parents=True, exist_ok=True)
R: dict = {"argv": sys.argv[1:], "runs": [], "errors": [], "versions": {}}
# The baseline's LoRA shape; dropout is loraflow's default (a variant may set lora_dropout).
LORA = LoraConfig(r=16, alpha=32, target_modules=base.TARGETS)
# Under torchrun (DDP scaling): every rank trains; rank 0 measures, prints and writes. Tokens/s counts all ranks.
WORLD, RANK = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def log(*a):
    if RANK == 0:
        print(f"[{time.perf_counter() - T0:6.1f}s]", *a, flush=True)


def save():
    if RANK == 0:
        OUT.write_text(json.dumps(R, indent=1, default=str))


def left() -> float:
    return args.budget - (time.perf_counter() - T0)


def versions() -> dict:
    found = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
             "peft": peft.__version__}
    for name in ("trl", "bitsandbytes", "accelerate", "datasets", "triton"):
        try:
            found[name] = __import__(name).__version__
        except Exception as e:  # noqa: BLE001
            found[name] = f"missing: {e!r}"[:120]
    if DEV == "cuda":
        found["card"] = torch.cuda.get_device_name(0)
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True)
        found["nvidia_smi"] = smi.stdout.strip()
    return found


def matmul_tflops() -> float | None:
    """Median bf16 8192^3 matmul rate on this card: the MFU denominator (as the baseline script measures it)."""
    if DEV != "cuda":
        return None
    n = 8192
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(30):
        a @ b
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(50)]
    for s, e in events:
        s.record()
        a @ b
        e.record()
    torch.cuda.synchronize()
    ms = statistics.median(s.elapsed_time(e) for s, e in events)
    return 2 * n**3 / (ms * 1e-3) / 1e12


def parse(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split("x")) for part in text.split(",") if part]


def ragged_lengths(n: int, max_len: int, seed: int = 0) -> list[int]:
    """Instruction-data-like lengths: log-normal around 256 tokens, clipped to [32, max_len]."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.exp(torch.randn(n, generator=g) * 0.7 + math.log(256))
    return [int(min(max(v, 32), max_len)) for v in raw.tolist()]


def random_rows(lengths: list[int], vocab: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def padded_batches(rows: list[list[int]], bs: int) -> list[dict]:
    """The plain stack's batches: right-padded to the longest row, attention mask, labels -100 on padding."""
    batches = []
    for i in range(0, len(rows) - bs + 1, bs):
        chunk = rows[i:i + bs]
        width = max(map(len, chunk))
        ids = torch.zeros(bs, width, dtype=torch.long)
        mask = torch.zeros(bs, width, dtype=torch.long)
        for j, row in enumerate(chunk):
            ids[j, :len(row)] = torch.tensor(row)
            mask[j, :len(row)] = 1
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    return batches


class StepTimer(TrainerCallback):
    """Wall time and trained tokens between consecutive optimizer steps (device synchronized)."""

    def __init__(self):
        self.trainer = None
        self.times: list[float] = []
        self.tokens: list[int] = []

    def _mark(self):
        if DEV == "cuda":
            torch.cuda.synchronize()
        # loraflow's trainer counts tokens over all ranks only when it logs (tasks/training/train_metrics.py): add this rank's
        # tokens since then, times the ranks (every rank trains the same shapes here)
        pending = getattr(self.trainer, "pending_local_tokens", lambda: 0)() * WORLD
        return time.perf_counter(), getattr(self.trainer, "_total_train_tokens", 0) + pending

    def on_train_begin(self, *a, **k):
        self.last = self._mark()

    def on_step_end(self, *a, **k):
        now = self._mark()
        self.times.append(now[0] - self.last[0])
        self.tokens.append(now[1] - self.last[1])
        self.last = now


class StepProfiler(TrainerCallback):
    """torch.profiler over two optimizer steps after the warm-up; writes the top CUDA kernels by total time."""

    def __init__(self, path: Path, start: int):
        self.path, self.start, self.prof = path, start, None

    def on_step_begin(self, args_, state, *a, **k):
        if state.global_step == self.start and self.prof is None:
            from torch.profiler import ProfilerActivity, profile

            self.prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else []))
            self.prof.__enter__()

    def on_step_end(self, args_, state, *a, **k):
        if self.prof is not None and state.global_step == self.start + 2:
            if DEV == "cuda":
                torch.cuda.synchronize()
            self.prof.__exit__(None, None, None)
            events = self.prof.key_averages()
            key = "self_device_time_total" if DEV == "cuda" else "self_cpu_time_total"
            table = events.table(sort_by=key, row_limit=45, max_name_column_width=90)
            self.path.write_text(table)
            log("profile written to", self.path)
            self.prof = False


def record(label: str, shape: str, res: dict, tflops: float | None, n_params: int, extra: dict | None = None) -> dict:
    rec = {"label": label, "shape": shape, **res, **(extra or {})}
    rec["tokens_per_s_mean_based"] = sum(res.get("tokens_measured", [res["tokens_per_step"]] * len(res["step_times_s"]))) / sum(res["step_times_s"])
    if tflops:
        rec["mfu_6N"] = rec["tokens_per_s"] * 6 * n_params / (tflops * 1e12)
    rec["loss_finite"] = all(math.isfinite(x) for x in res.get("losses", []) if x is not None)
    R["runs"].append(rec)
    save()
    log(f"{label:18s} {shape:14s} {rec['tokens_per_s']:8.0f} tok/s  peak {rec.get('peak_alloc_GiB') or 0:6.2f} GiB  "
        f"{rec['s_per_step_median']:.3f} s/step  mfu {rec.get('mfu_6N', 0):.3f}")
    return rec


def stage(name: str, fn, min_left: float = 30.0):
    if left() < min_left:
        R["errors"].append({"where": name, "error": f"skipped: {left():.0f}s left"})
        log("skip", name, f"{left():.0f}s left")
        return None
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - record, free memory and carry on with the next stage
        import traceback

        R["errors"].append({"where": name, "error": repr(e)[:500], "traceback": traceback.format_exc()[-3000:]})
        log("ERROR", name, repr(e)[:300])
        base.free()
        save()
        return None


def baseline_stage(cfg, tflops, n_params):
    model = base.build_baseline(cfg, DEV)
    for seq, bs in parse(args.settings) + parse(args.peak):
        steps = args.warm + (args.meas if (seq, bs) in parse(args.settings) else 3)
        rows = random_rows([seq] * (steps * bs), cfg.vocab_size)
        batches = [{"input_ids": torch.tensor(rows[i:i + bs]), "labels": torch.tensor(rows[i:i + bs])}
                   for i in range(0, len(rows), bs)]
        record("baseline", f"{seq}x{bs}", base.run_baseline(model, batches, args.warm, DEV), tflops, n_params)
    for max_len, bs in parse(args.ragged):
        rows = random_rows(ragged_lengths((args.warm + args.meas + 2) * bs, max_len), cfg.vocab_size)
        res = base.run_baseline(model, padded_batches(rows, bs), args.warm, DEV)
        record("baseline", f"ragged{max_len}x{bs}", res, tflops, n_params, {"mean_len": statistics.mean(map(len, rows))})
    del model
    base.free()


def loraflow_run(model, train: TrainConfig, lora: LoraConfig, dataset, max_len: int, cfg, profile: Path | None = None):
    """One trainer.train() through build_trainer; returns (result dict, the peft model for reuse)."""
    import torch._dynamo

    torch._dynamo.reset()  # every shape compiles afresh, as in a real run that sees only this shape
    timer = StepTimer()
    speed = resolve_speed(train, DEV, cfg.to_dict(), max_len, lora)
    if getattr(model, "peft_config", None) and speed.attn_implementation != model.config._attn_implementation:
        model.get_base_model().set_attn_implementation(speed.attn_implementation)
    with tempfile.TemporaryDirectory() as tmp:
        # the profiled steps come after the measured ones (the profiler slows them) and are not timed
        callbacks = [timer] + ([StepProfiler(profile, train.max_steps - 2)] if profile else [])
        trainer = build_trainer(model, token_id_tokenizer(), train, lora, max_len, Path(tmp), DEV == "cuda", dataset, None,
                                callbacks, speed, WORLD)
        timer.trainer = trainer
        if args.trl_metrics and train.objective == "sft":
            from trl import SFTTrainer

            trainer.__class__ = SFTTrainer  # the same set-up; trl's compute_loss and log
        base.free()
        result = trainer.train()
    peak = torch.cuda.max_memory_allocated() / base.GIB if DEV == "cuda" else None
    end = len(timer.times) - (2 if profile else 0)
    times, tokens = timer.times[args.warm:end], timer.tokens[args.warm:end]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h] + [result.metrics.get("train_loss")]
    median = statistics.median(times)
    res = {"s_per_step_median": median, "step_times_s": times, "warm_times_s": timer.times[:args.warm],
           "tokens_measured": tokens, "tokens_per_step": statistics.mean(tokens),
           "tokens_per_s": statistics.mean(tokens) / median, "peak_alloc_GiB": peak, "losses": losses,
           "speed": speed.to_dict(),
           "pack_plan": trainer.pack_plan.to_dict() if getattr(trainer, "pack_plan", None) else None,
           "examples_per_step": _examples_per_step(trainer)}
    model = trainer.model
    timer.trainer = None
    del trainer
    base.free()
    return res, model


def _examples_per_step(trainer) -> float | None:
    """Mean examples per optimizer step of the packed training rows (their seq_lengths), else None."""
    data = trainer.train_dataset
    if "seq_lengths" not in data.column_names:
        return None
    per_row = statistics.mean(len(x) for x in data["seq_lengths"])
    return per_row * trainer.args.gradient_accumulation_steps * trainer.args.per_device_train_batch_size * WORLD


def loraflow_stage(cfg, tflops, n_params, label: str, overrides: dict, full: bool):
    import datasets

    overrides = dict(overrides)
    lora = LORA.model_copy(update={"dropout": overrides.pop("lora_dropout")}) if "lora_dropout" in overrides else LORA

    def train_config(bs: int, steps: int, **more) -> TrainConfig:
        return TrainConfig(method="qlora", micro_batch_size=bs, effective_batch_size=bs * args.accumulate, max_steps=steps,
                           gradient_checkpointing=True, learning_rate=base.LR, warmup_ratio=0.0, weight_decay=0.0,
                           lr_scheduler="constant_with_warmup", save_steps=10**6, **{**overrides, **more})

    first = train_config(1, 1)
    speed = resolve_speed(first, DEV)
    state = base.random_state_dict(cfg, DEV)
    device = f"cuda:{torch.cuda.current_device()}" if DEV == "cuda" else DEV  # each DDP rank loads onto its own GPU
    model = load_model(None, "qlora", device, DEV == "cuda", True, attn_implementation=speed.attn_implementation,
                       qlora_fp32=first.qlora_fp32, config=copy.deepcopy(cfg), state_dict=state)
    del state
    base.free()
    shapes = parse(args.settings) + (parse(args.peak) if full else [])
    for i, (seq, bs) in enumerate(shapes):
        steps = args.warm + (args.meas if (seq, bs) in parse(args.settings) else 3)
        rows = random_rows([seq] * (steps * bs * WORLD * max(1, args.accumulate // WORLD)), cfg.vocab_size)
        profile = OUT.parent / f"profile_{label}_{seq}x{bs}.txt" if args.profile and i == 0 else None
        steps += 2 if profile else 0
        res, model = loraflow_run(model, train_config(bs, steps), lora, datasets.Dataset.from_dict({"input_ids": rows}),
                                  seq, cfg, profile)
        record(label, f"{seq}x{bs}", res, tflops, n_params, {"world_size": WORLD, "accumulate": args.accumulate,
                                                              "lora_dropout": lora.dropout})
        if left() < 60:
            break
    if not full:
        return
    for max_len, bs in parse(args.ragged):
        steps = args.warm + args.meas
        examples = [int(n) for n in args.ragged_examples.split(",") if n]
        rows = random_rows(ragged_lengths((steps + 2) * max([bs * 4, *examples]), max_len), cfg.vocab_size)
        dataset = datasets.Dataset.from_dict({"input_ids": rows})
        # padded: micro-batches of bs examples; packed (train.packing auto, the default on CUDA): rows sized to keep
        # `per_step` examples per optimizer step within bs x max_len tokens per micro-batch
        runs = [] if args.packed_only else [(False, bs * args.accumulate)]
        runs += [("auto", n) for n in examples or [bs * args.accumulate]]
        for packing, per_step in runs:
            if left() < 45:
                break
            config = train_config(bs, steps, packing=packing).model_copy(update={"effective_batch_size": per_step})
            res, model = loraflow_run(model, config, lora, dataset, max_len, cfg)
            record(label + ("_packed" if packing else "_padded") + (f"_{per_step}ex" if packing else ""),
                   f"ragged{max_len}x{bs}", res, tflops, n_params,
                   {"mean_len": statistics.mean(map(len, rows)), "examples_per_step": per_step,
                    "pack_plan": res.get("pack_plan")})
    del model
    base.free()


VARIANTS = {"loraflow": {}, "fp32_all": {"qlora_fp32": "all"}, "bf16_all": {"qlora_fp32": "none"},
            "old_defaults": {"lora_dropout": 0.05, "qlora_fp32": "norms", "unchecked_layers": 0},
            "bf16_unchecked2": {"qlora_fp32": "none", "unchecked_layers": 2},
            "bf16_unchecked3": {"qlora_fp32": "none", "unchecked_layers": 3},
            "bf16_unchecked4": {"qlora_fp32": "none", "unchecked_layers": 4},
            "no_compile": {"compile_layers": False}}


def variant(name: str) -> dict:
    """A preset of VARIANTS, or TrainConfig fields (and lora_dropout) spelled key=value+key=value."""
    if name in VARIANTS:
        return VARIANTS[name]
    settings = dict(part.split("=", 1) for part in name.split("+"))
    return {k: v if k in ("qlora_fp32", "optimizer") or v == "auto" else float(v) if "." in v else int(v)
            for k, v in settings.items()}


def main():
    R["versions"] = versions()
    log("versions", R["versions"])
    tflops = R["matmul_bf16_tflops"] = matmul_tflops()
    log("matmul bf16 TFLOP/s", tflops)
    cfg = base.make_config(args.tiny)
    n_params = R["n_params"] = sum(math.prod(p) for p in _param_shapes(cfg))
    save()
    if not args.skip_baseline and WORLD == 1:
        stage("baseline", lambda: baseline_stage(cfg, tflops, n_params), 60)
    for i, name in enumerate(v for v in args.variants.split(",") if v):
        label = "loraflow" if name == "loraflow" else f"loraflow_{name}"
        stage(label, lambda: loraflow_stage(cfg, tflops, n_params, label, variant(name), full=i == 0), 60)


def _param_shapes(cfg):
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return [tuple(p.shape) for p in model.parameters()]


def table():
    print("\n" + "=" * 100)
    print("card:", R["versions"].get("nvidia_smi") or DEV, "| matmul bf16 TFLOP/s:", R.get("matmul_bf16_tflops"))
    print("versions:", {k: v for k, v in R["versions"].items() if k not in ("nvidia_smi",)})
    ref = {r["shape"]: r for r in R["runs"] if r["label"] == "baseline"}
    print(f"{'variant':22s} {'shape':14s} {'tok/s':>8s} {'x base':>7s} {'peak GiB':>9s} {'s/step':>7s} {'MFU6N':>6s}  mean-based tok/s")
    for r in R["runs"]:
        b = ref.get(r["shape"])
        key = "tokens_per_s_mean_based" if r["shape"].startswith("ragged") else "tokens_per_s"
        ratio = f"{r[key] / b[key]:.2f}" if b else "-"
        print(f"{r['label']:22s} {r['shape']:14s} {r[key]:8.0f} {ratio:>7s} {r.get('peak_alloc_GiB') or 0:9.2f} "
              f"{r['s_per_step_median']:7.3f} {r.get('mfu_6N') or 0:6.3f}  {r['tokens_per_s_mean_based']:.0f}")
    print("errors:", [e["where"] + ": " + e["error"][:200] for e in R["errors"]])
    print("total s:", round(time.perf_counter() - T0, 1))


if __name__ == "__main__":
    rc = 0
    try:
        main()
    except BaseException as e:  # noqa: BLE001 - keep what was measured
        R["errors"].append({"where": "main", "error": repr(e)[:500]})
        rc = 1
    R["total_s"] = time.perf_counter() - T0
    save()
    if RANK == 0:
        table()
    sys.exit(rc)
