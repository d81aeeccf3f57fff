"""Evaluation speed: samples/s of batched greedy generation against one-at-a-time, same model, same run.

Needs only torch, transformers, peft (+ sacrebleu, rouge-score, jieba for the scoring column) and this repo.
    .venv/bin/python benchmarks/eval_bench.py --models tiny smollm2 --samples 32 --batch-size 8 --max-new-tokens 48
`random:smollm2` / `random:1b` (for the GPU machine, which has no SmolLM2 package): random weights in those
architectures with the tiny model's tokenizer and chat template (speed does not depend on the weights' values).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_common import add_model_options, apply_threads, emit_json, print_report, run_models, save_random_model  # noqa: E402
from loraflow.tasks.evaluation.generate import generate_for_records, load_model, split_record  # noqa: E402
from loraflow.tasks.common.errors import LoraflowError  # noqa: E402

DATA = ROOT / "examples" / "quickstart" / "tickets.jsonl"


def load_records(samples: int) -> list[dict]:
    """The first usable quickstart tickets (real zh/en requests), repeated if the file is short."""
    records = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        try:  # the raw example file is deliberately dirty (broken lines, empty answers): keep clean prompts only
            record = json.loads(line)
            _, reference = split_record(record, str(DATA))
        except (ValueError, LoraflowError):
            continue
        if reference.strip():
            records.append(record)
    return [records[i % len(records)] for i in range(samples)]


def resolve(name: str, cache_dir: str, texts: list[str]) -> str:
    """A local model folder for tiny / smollm2 / random:SHAPE / a path."""
    from loraflow.tasks.common.base_model import SMOLLM2, TINY, resolve_base_model

    if name.startswith("random:"):
        import shutil

        from transformers import AutoTokenizer

        tiny = Path(resolve_base_model(TINY, None, None, cache_dir, texts))
        folder = Path(cache_dir) / name.replace(":", "-")
        save_random_model(name, folder, vocab_size=len(AutoTokenizer.from_pretrained(tiny)))
        for file in tiny.iterdir():
            if "token" in file.name or file.name == "chat_template.jinja":
                shutil.copy(file, folder / file.name)
        return str(folder)
    alias = {"tiny": TINY, "smollm2": SMOLLM2}.get(name, name)
    return resolve_base_model(alias, None, None, cache_dir, texts)


def timed(model, tokenizer, records, max_new_tokens, batch_size) -> tuple[list[dict], float]:
    start = time.perf_counter()
    rows = generate_for_records(model, tokenizer, records, max_new_tokens, batch_size, desc=f"batch_size={batch_size}")
    return rows, time.perf_counter() - start


def bench_model(name: str, args) -> dict:
    records = load_records(args.samples)
    texts = [m["content"] for r in records for m in r["messages"]]
    path = resolve(name, args.cache_dir, texts)
    model, tokenizer = load_model(path)
    generate_for_records(model, tokenizer, records[:2], 4, 2, desc="warm-up")
    batched, t_batched = timed(model, tokenizer, records, args.max_new_tokens, args.batch_size)
    single, t_single = timed(model, tokenizer, records, args.max_new_tokens, 1)
    n = len(records)
    scoring = "n/a"
    try:  # the GPU machine lacks the metric packages: time the scoring only where they are installed
        from loraflow.tasks.evaluation.evaluate import score_rows
    except ImportError:
        pass
    else:
        start = time.perf_counter()
        score_rows(batched)
        scoring = round(n / (time.perf_counter() - start), 1)
    new_tokens = sum(r["generation"]["new_tokens"] for r in batched)
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(batched, single, strict=True))
    return {
        "model": Path(name).name, "samples": n, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "batched_s": round(t_batched, 2), "single_s": round(t_single, 2),
        "batched_samples_per_s": round(n / t_batched, 2), "single_samples_per_s": round(n / t_single, 2),
        "speedup": round(t_single / t_batched, 2), "generated_tokens": new_tokens,
        "batched_tokens_per_s": round(new_tokens / t_batched, 1), "scoring_samples_per_s": scoring,
        "same_answers": f"{same}/{n}",
    }


def bench_fast(name: str, args) -> list[dict]:
    """Today's eager generate against the fast path (static cache + compiled decode step), same model, same process.

    Per batch size: the fast path's first call (compilation included) over the records, then a timed, warm run of each
    path (eager first), and how many greedy answers the two agree on.
    """
    from loraflow.tasks.evaluation import fast_generate

    records = load_records(args.samples)
    texts = [m["content"] for r in records for m in r["messages"]]
    model, tokenizer = load_model(resolve(name, args.cache_dir, texts))
    results = []
    for batch_size in args.fast_batch_sizes:
        os.environ["LORAFLOW_FAST_GENERATE"] = "0"
        generate_for_records(model, tokenizer, records[:batch_size], 4, batch_size, desc="warm-up")
        eager, t_eager = timed(model, tokenizer, records, args.max_new_tokens, batch_size)
        os.environ["LORAFLOW_FAST_GENERATE"] = args.fast_mode
        _, t_first = timed(model, tokenizer, records, args.max_new_tokens, batch_size)
        fast, t_fast = timed(model, tokenizer, records, args.max_new_tokens, batch_size)
        tokens_eager = sum(r["generation"]["new_tokens"] for r in eager)
        tokens_fast = sum(r["generation"]["new_tokens"] for r in fast)
        same = sum(a["prediction"] == b["prediction"] for a, b in zip(eager, fast, strict=True))
        results.append({
            "model": Path(name).name, "samples": len(records), "batch_size": batch_size,
            "max_new_tokens": args.max_new_tokens, "mode": args.fast_mode, "eager_s": round(t_eager, 2),
            "fast_first_call_s": round(t_first, 2), "fast_s": round(t_fast, 2),
            "eager_tokens_per_s": round(tokens_eager / t_eager, 1), "fast_tokens_per_s": round(tokens_fast / t_fast, 1),
            "speedup": round((tokens_fast / t_fast) / (tokens_eager / t_eager), 2), "same_answers": f"{same}/{len(records)}",
            "plan": str(fast_generate.fast_generation_plan(model, batch_size, [8], args.max_new_tokens)),
        })
        print(json.dumps(results[-1]), flush=True)
    os.environ.pop("LORAFLOW_FAST_GENERATE", None)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], help="tiny, smollm2 or local model folders")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--fast", action="store_true", help="compare today's eager generate with the fast path "
                        "(static cache + compiled decode step) at --fast-batch-sizes instead")
    parser.add_argument("--fast-batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--fast-mode", default="1", help="LORAFLOW_FAST_GENERATE for the fast runs: 1 (CUDA graphs) or default")
    add_model_options(parser)
    args = parser.parse_args()
    apply_threads(args)
    if args.fast:
        when, header, results = run_models(args.models, lambda name: bench_fast(name, args))
        print_report("Evaluation generation: eager generate against the static cache + compiled decode step", when, header,
                     ["model", "samples", "batch", "max new tokens", "eager tok/s", "fast tok/s (warm)", "speed-up",
                      "fast first call s (compile)", "same answers"],
                     [[r["model"], r["samples"], r["batch_size"], r["max_new_tokens"], r["eager_tokens_per_s"],
                       r["fast_tokens_per_s"], f"{r['speedup']}x", r["fast_first_call_s"], r["same_answers"]]
                      for r in results])
        return emit_json(when, header, results, args.json)
    when, header, results = run_models(args.models, lambda name: bench_model(name, args))
    print_report("Evaluation generation speed", when, header,
                 ["model", "samples", "batch", "max new tokens", "batched samples/s", "one-at-a-time samples/s", "speed-up",
                  "batched gen tokens/s", "scoring samples/s", "same answers"],
                 [[r["model"], r["samples"], r["batch_size"], r["max_new_tokens"], r["batched_samples_per_s"],
                   r["single_samples_per_s"], f"{r['speedup']}x", r["batched_tokens_per_s"], r["scoring_samples_per_s"],
                   r["same_answers"]] for r in results])
    return emit_json(when, header, results, args.json)


if __name__ == "__main__":
    sys.exit(main())
