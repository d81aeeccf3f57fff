"""What makes the main job learn its task: training variants on a run folder's splits, scored field by field.

Each variant trains through the real path (`loraflow.tasks.training.train.train_model`, the quickstart's config plus `--set`-style
overrides) on DATA/train.jsonl with DATA/val.jsonl for early stopping, then answers DATA/test.jsonl greedily
(`loraflow.tasks.evaluation.evaluate.evaluate_model`) and reports per-field accuracy, json_field_score, the most frequent answer per
categorical field, optimizer steps, and train and evaluation seconds. One JSON line per variant is appended to --out.

    .venv/bin/python benchmarks/learning_levers.py --data runs/quickstart/data \\
        --variant 'e2_last10={"lora.last_layers": 10, "train.epochs": 2}' --variant 'e1={}'

DATA comes from a pipeline run (`loraflow data CONFIG --out DIR` writes DIR/data). Timings depend on the machine
and its load: compare variants of the same run, and record the 1-minute load average it prints.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loraflow.tasks.common.config_files import load_config  # noqa: E402
from loraflow.tasks.evaluation.evaluate import evaluate_model  # noqa: E402
from loraflow.tasks.training.train import train_model  # noqa: E402


def run_variant(name: str, overrides: dict, config_path: str, data: Path, model: str, out_root: Path) -> dict:
    """Train and evaluate one variant; the result line."""
    config = load_config(config_path, [f"{key}={value}" for key, value in overrides.items()])
    out = out_root / name
    load = os.getloadavg()[0]
    started = time.perf_counter()
    # model.max_length auto: the length the data flow chose for these splits (report.json), as the pipeline trains
    chosen = json.loads((data / "report.json").read_text(encoding="utf-8")).get("sequence_length") or {}
    trained = train_model(model, str(data / "train.jsonl"), str(data / "val.jsonl"), config.lora, config.train,
                          config.model.length_or(chosen.get("max_length", 512)), str(out))
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate_model(model, trained.adapter_path, str(data / "test.jsonl"), config.eval, config.task_card, str(out), "candidate")
    eval_s = time.perf_counter() - started
    fields = result.fields
    return {
        "name": name, "overrides": overrides, "steps": trained.metrics["global_step"], "train_s": round(train_s),
        "eval_s": round(eval_s), "best_eval_loss": trained.metrics.get("best_eval_loss"),
        "fields": {n: round(r.accuracy if r.kind == "categorical" else r.exact_match, 3) for n, r in fields.items()},
        "macro_f1": {n: round(r.macro_f1, 3) for n, r in fields.items() if r.kind == "categorical"},
        "json_field_score": result.metrics.get("json_field_score"),
        "top_answer": {n: [r.top_predicted, round(r.top_predicted_share, 2)] for n, r in fields.items() if r.kind == "categorical"},
        "load_1min_before": round(load, 2), "torch_threads": __import__("torch").get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with train/val/test.jsonl (a run folder's data/)")
    parser.add_argument("--config", default="examples/quickstart/pipeline.yaml")
    parser.add_argument("--model", default=".loraflow/models/smollm2-135m-instruct", help="base model folder")
    parser.add_argument("--variant", action="append", required=True, help="NAME=JSON object of dotted config overrides")
    parser.add_argument("--out", default="/tmp/learning_levers.jsonl")
    parser.add_argument("--work", default="/tmp/learning_levers")
    args = parser.parse_args()
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        line = run_variant(name, json.loads(overrides or "{}"), args.config, Path(args.data), args.model, Path(args.work))
        print("RESULT", json.dumps(line, ensure_ascii=False), flush=True)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
