"""Constrained against free decoding on one model and one test split: per-field scores, answers outside the schema,
and what the mask costs.

Both passes go through the real path (`loraflow.tasks.evaluation.generate.generate_for_records`, greedy, the same
batches), scored by `loraflow.tasks.evaluation.evaluate.score_rows`. The mask's cost is the CPU time of the main thread
inside lm-format-enforcer's `prefix_allowed_tokens_fn` (thread time: it does not grow with other processes' load), per
generated token and as a share of the constrained pass's wall time.

    .venv/bin/python benchmarks/constrained_bench.py --config examples/quickstart/pipeline.yaml \
        --model runs/quickstart/model/merged --test runs/quickstart/data/test.jsonl
"""
import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loraflow.tasks.common.config_files import load_config  # noqa: E402
from loraflow.tasks.evaluation import constrained  # noqa: E402
from loraflow.tasks.evaluation.evaluate import answer_fields, score_rows  # noqa: E402
from loraflow.tasks.evaluation.generate import generate_for_records, load_model, load_test_records  # noqa: E402


def timed_mask(spent: list[float]):
    """Wrap constrained.allowed_tokens_fn so every call's main-thread CPU time lands in spent."""
    original = constrained.allowed_tokens_fn

    def wrapper(*args, **kwargs):
        inner = original(*args, **kwargs)

        def allowed(batch_id, sequence):
            start = time.thread_time()
            try:
                return inner(batch_id, sequence)
            finally:
                spent.append(time.thread_time() - start)

        return allowed

    constrained.allowed_tokens_fn = wrapper


def summarize(rows: list[dict], fields, declared: dict) -> dict:
    out = {"json_valid": sum(r["scores"].get("json_valid", 0.0) for r in rows) / len(rows)}
    for spec in fields:
        key = f"field.{spec.name}.accuracy" if spec.kind == "categorical" else f"field.{spec.name}.exact_match"
        out[key] = sum(r["scores"].get(key, 0.0) for r in rows) / len(rows)
        if spec.kind == "categorical":
            answers = Counter((r.get("fields") or {}).get(spec.name, {}).get("prediction") for r in rows)
            out[f"{spec.name}: no declared class (invalid or other)"] = sum(n for value, n in answers.items()
                                                                     if value not in declared.get(spec.name, ()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--model", required=True, help="a model folder (merged fine-tune or base)")
    parser.add_argument("--test", required=True, help="the run's test split (JSONL)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    config = load_config(args.config)
    declared = config.task_card.fields
    schema = constrained.answer_schema(declared)
    records = load_test_records(args.test)
    fields = answer_fields(args.test, config.task_card)
    model, tokenizer = load_model(args.model)
    spent: list[float] = []
    timed_mask(spent)
    results = {}
    for name, bound in (("free", None), ("constrained", schema)):
        start = time.perf_counter()
        rows = generate_for_records(model, tokenizer, records, args.max_new_tokens, args.batch_size, desc=name, schema=bound)
        wall = time.perf_counter() - start
        score_rows(rows, fields)
        new_tokens = sum(r["generation"]["new_tokens"] for r in rows)
        results[name] = {**summarize(rows, fields, declared), "wall_s": round(wall, 1), "new_tokens": new_tokens}
    mask_s = sum(spent)
    results["constrained"]["mask_cpu_s"] = round(mask_s, 2)
    results["constrained"]["mask_ms_per_call"] = round(1000 * mask_s / max(1, len(spent)), 2)
    results["constrained"]["mask_share_of_wall"] = round(mask_s / results["constrained"]["wall_s"], 3)
    print(f"model {args.model} | test {args.test} ({len(records)} cases) | batch {args.batch_size} | "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    keys = [k for k in results["free"]]
    print("| measure | free | constrained |\n|---|---|---|")
    for key in keys:
        print(f"| {key} | {results['free'][key]} | {results['constrained'][key]} |")
    for key in ("mask_cpu_s", "mask_ms_per_call", "mask_share_of_wall"):
        print(f"| {key} | - | {results['constrained'][key]} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
