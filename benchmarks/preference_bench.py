"""Preference tuning, measured: held-out preference accuracy and the task metric before and after DPO (or ORPO).

The bundled example (examples/preferences/pairs.jsonl: tickets whose rejected answer follows a negated decoy word)
goes through the real data stages (ingest, validate, clean, split), the base model is scored on the test pairs
(does it give the chosen answer more log-probability than the rejected one) and on the task (greedy JSON extraction,
json_field_accuracy and each answer field), trained with train_model on the first --train-pairs training pairs, and
scored again. With --objective sft_then_dpo the supervised phase's adapter is scored too (row `sft`): the SFT-only
model the DPO phase starts from, so the table shows whether DPO bought preference accuracy with the task;
--sft-control adds that adapter trained as long again on the chosen answers (row `sft_longer`), the control for what
the DPO phase adds. --objective sft_then_grpo does the same for GRPO (rewards from the example's task card; rows
`sft`, `sft_longer`, `sft_then_grpo`). Training settings not given come from the example's pipeline.yaml.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/preference_bench.py \\
        --model .loraflow/models/smollm2-135m-instruct --train-pairs 192 --test-pairs 24 --sft-control --threads 2
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from bench_common import add_model_options, apply_threads, emit_json, print_report, run_models  # noqa: E402
from loraflow.tasks.common.config_files import load_config  # noqa: E402
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl  # noqa: E402

EXAMPLE = ROOT / "examples" / "preferences" / "pipeline.yaml"
TASK_METRICS = ("json_field_accuracy", "json_field_score", "json_valid")
FIELD_STATS = (".accuracy", ".exact_match")  # field.<name>.<stat>: the shown stat of each answer field


def prepare_splits(config, out: Path) -> dict:
    """The example's pairs through the data stages (no tokenizer: lengths are checked in training)."""
    from loraflow.tasks.data.clean import clean_records
    from loraflow.tasks.data.ingest import ingest_records
    from loraflow.tasks.data.split import split_records
    from loraflow.tasks.data.validate import validate_records

    ingested = ingest_records(config.data.path, config.data, str(out))
    validated = validate_records(ingested["records"], config.data, list(config.task_card.languages), None, 4096, str(out))
    cleaned = clean_records(validated["records"], config.clean, list(config.task_card.languages), str(out))
    return split_records(cleaned["records"], config.split, str(out))


def score(label: str, model: str, adapter: str | None, test: str, config, out: Path, task_metric: bool) -> dict:
    """Preference accuracy on the test pairs, and the task metric from greedy answers when asked."""
    from loraflow.tasks.evaluation.evaluate import evaluate_model
    from loraflow.tasks.evaluation.preference import score_pairs

    started = time.perf_counter()
    pairs = score_pairs(model, adapter, test)
    row = {"model": label, "pairs": pairs["n"], "preference_accuracy": round(pairs["accuracy"], 4),
           "mean_margin": round(pairs["mean_margin"], 3)}
    if "accuracy_vs_reference" in pairs:
        row["accuracy_vs_reference"] = round(pairs["accuracy_vs_reference"], 4)
    if task_metric:
        metrics = evaluate_model(model, adapter, test, config.eval, config.task_card, str(out), label).metrics
        row.update({k: round(v, 4) for k, v in metrics.items() if k in TASK_METRICS or k.endswith(FIELD_STATS)})
    row["score_seconds"] = round(time.perf_counter() - started, 1)
    return row


def bench(args) -> list[dict]:
    from loraflow.tasks.training.train import train_model

    # Only what is given on the command line overrides the example's own settings (examples/preferences/pipeline.yaml).
    given = {"train.objective": args.objective, "train.learning_rate": args.lr, "train.epochs": args.epochs,
             "train.effective_batch_size": args.batch, "train.micro_batch_size": args.batch,
             "train.preference_beta": args.beta, "train.preference_sft_weight": args.sft_weight,
             "train.preference_learning_rate": args.preference_lr, "model.max_length": args.max_length,
             "train.grpo.num_generations": args.generations, "train.grpo.learning_rate": args.grpo_lr,
             "train.grpo.max_completion_length": args.completion}
    overrides = [f"{key}={value}" for key, value in given.items() if value is not None] + list(args.set or [])
    config = load_config(EXAMPLE, overrides)
    objective = config.train.objective
    out = Path(args.out or tempfile.mkdtemp(prefix="preference-bench-"))
    splits = prepare_splits(config, out)
    train, test = out / "bench_train.jsonl", out / "bench_test.jsonl"
    write_jsonl(train, read_jsonl(splits["train"])[:args.train_pairs])
    write_jsonl(test, read_jsonl(splits["test"])[:args.test_pairs])
    rows = [score("base", args.model, None, str(test), config, out, args.task_metric)]
    print(f"base: {rows[0]}", file=sys.stderr, flush=True)  # a run stopped by a time limit still leaves this
    train_config, init_adapter = config.train, None
    if args.sft_adapter:  # sft_then_dpo's DPO phase alone, from an earlier run's supervised adapter (what phase 2 runs)
        rows.append({**score("sft", args.model, args.sft_adapter, str(test), config, out, args.task_metric),
                     "note": f"supervised adapter {args.sft_adapter}"})
        second = config.train.objective.removeprefix("sft_then_")
        train_config, init_adapter = config.train.model_copy(update={"objective": second}), args.sft_adapter
        if args.sft_control:
            rows.append(sft_control(args, config, args.sft_adapter, train, test, out))
    started = time.perf_counter()
    trained = train_model(args.model, str(train), None, config.lora, train_config, config.model.length_or(512),
                          str(out / "run"), init_adapter=init_adapter, rewards=grpo_rewards(config, train))
    seconds = time.perf_counter() - started
    metrics = trained.metrics
    if trained.sft_phase is not None:  # the supervised phase alone: the model DPO starts from (and its reference)
        sft = score("sft", args.model, trained.sft_phase.adapter_path, str(test), config, out, args.task_metric)
        sft.update(_training_columns(metrics, metrics["sft_train_seconds"], prefix="sft_"))
        print(f"sft: {sft}", file=sys.stderr, flush=True)
        rows.append(sft)
        seconds -= metrics["sft_train_seconds"]  # the candidate row's seconds: its DPO phase
        if args.sft_control:
            rows.append(sft_control(args, config, trained.sft_phase.adapter_path, train, test, out))
    candidate = score(objective, args.model, trained.adapter_path, str(test), config, out, args.task_metric)
    candidate.update({**_training_columns(metrics, seconds), **_last_rewards(trained.log_history)})
    return rows + [candidate]


def sft_control(args, config, sft_adapter: str, train: Path, test: Path, out: Path) -> dict:
    """The control for sft_then_dpo's DPO phase: the supervised adapter trained as long again on the chosen answers.

    Same pairs, same steps and learning rate as the DPO phase, supervised only: what the DPO phase adds beyond more
    supervised training on the same data (its NLL term on the chosen answer included) is the difference of the rows.
    """
    from loraflow.tasks.training.train import train_model

    second = config.train.grpo.learning_rate if config.train.grpo_rewards else config.train.preference_learning_rate
    learning_rate = second or config.train.learning_rate
    control = config.train.model_copy(update={"objective": "sft", "learning_rate": learning_rate})
    started = time.perf_counter()
    trained = train_model(args.model, str(train), None, config.lora, control, config.model.length_or(512),
                          str(out / "sft_control"), init_adapter=sft_adapter)
    seconds = time.perf_counter() - started
    row = score("sft_longer", args.model, trained.adapter_path, str(test), config, out, args.task_metric)
    row.update({**_training_columns(trained.metrics, seconds),
                "note": "control: the sft row's adapter, supervised again for the DPO phase's steps"})
    print(f"sft_longer: {row}", file=sys.stderr, flush=True)
    return row


def grpo_rewards(config, train: Path):
    """The task card's GRPO rewards over the training references (None for the preference objectives)."""
    if config.train.grpo_rewards is None:
        return None
    from loraflow.tasks.evaluation.rewards import reward_functions

    references = [r["messages"][-1]["content"] for r in read_jsonl(train)]
    return reward_functions(config.task_card.fields, references, config.train.grpo)


def _training_columns(metrics: dict, seconds: float, prefix: str = "") -> dict:
    """A trained row's training columns from train_model's metrics (prefix sft_: sft_then_dpo's supervised phase)."""
    return {"train_pairs": metrics[f"{prefix}train_examples"], "steps": metrics[f"{prefix}global_step"],
            "train_seconds": round(seconds, 1), "final_train_loss": round(metrics.get(f"{prefix}train_loss", float("nan")), 4)}


def _last_rewards(log_history: str) -> dict:
    """The last logged DPO rewards (beta x log-ratio to the reference) of the chosen and the rejected answers."""
    import json

    history = json.loads(Path(log_history).read_text())
    rewards = [h["reward"] for h in history if h.get("reward") is not None]
    if rewards:  # GRPO: the mean reward of the first and the last logged steps
        return {"first_reward": round(rewards[0], 3), "last_reward": round(rewards[-1], 3)}
    logged = [h for h in history if "rewards/chosen" in h]
    return {"last_reward_chosen": round(logged[-1]["rewards/chosen"], 3),
            "last_reward_rejected": round(logged[-1]["rewards/rejected"], 3)} if logged else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / ".loraflow" / "models" / "smollm2-135m-instruct"))
    # Training settings left out come from the example's pipeline.yaml (what `loraflow run` on the example trains with).
    parser.add_argument("--objective", choices=["dpo", "orpo", "sft_then_dpo", "grpo", "sft_then_grpo"],
                        help="train.objective")
    parser.add_argument("--generations", type=int, help="train.grpo.num_generations")
    parser.add_argument("--grpo-lr", type=float, help="train.grpo.learning_rate (default: --lr)")
    parser.add_argument("--completion", type=int, help="train.grpo.max_completion_length")
    parser.add_argument("--train-pairs", type=int, default=96)
    parser.add_argument("--test-pairs", type=int, default=24)
    parser.add_argument("--epochs", type=float, help="train.epochs")
    parser.add_argument("--lr", type=float, help="train.learning_rate")
    parser.add_argument("--preference-lr", type=float, help="train.preference_learning_rate (default: --lr)")
    parser.add_argument("--beta", type=float, help="train.preference_beta")
    parser.add_argument("--sft-weight", type=float, help="train.preference_sft_weight (NLL on the chosen answer)")
    parser.add_argument("--sft-control", action="store_true", help="with sft_then_dpo: also train the supervised adapter "
                        "as long again on the chosen answers (row sft_longer), the control for what the DPO phase adds")
    parser.add_argument("--sft-adapter", help="with --objective sft_then_dpo: run only the DPO phase, from this supervised "
                        "adapter (e.g. RUN/run/sft_phase/model/adapter of an earlier run)")
    parser.add_argument("--batch", type=int, help="effective (= micro) batch size of training")
    parser.add_argument("--max-length", type=int, help="override model.max_length (the tiny test model's tokenizer needs ~1024)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="any other config override, as `loraflow run --set` takes it (e.g. train.grpo.weights.rejected=0)")
    parser.add_argument("--no-task-metric", dest="task_metric", action="store_false", help="skip greedy generation")
    parser.add_argument("--out", help="run folder (default: a temp folder)")
    add_model_options(parser)
    args = parser.parse_args()
    apply_threads(args)
    when, header, rows = run_models([args.model], lambda _: bench(args))
    fields = sorted({k for row in rows for k in row if k.startswith("field.")})
    headings = ["model", "pairs", "preference_accuracy", "accuracy_vs_reference", "mean_margin", *TASK_METRICS, *fields,
                "last_reward_chosen", "last_reward_rejected", "first_reward", "last_reward", "train_pairs", "steps", "train_seconds", "score_seconds"]
    print_report("Preference tuning (held-out pairs)", when, header, headings,
                 [[row.get(h, "") for h in headings] for row in rows])
    return emit_json(when, header, rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
