"""The evaluation report: built from a run folder written by the real evaluation, badcase and promotion code."""
import base64
import json
import os
import re
import uuid
from dataclasses import asdict
from pathlib import Path

import pytest

from loraflow.schemas.config.evaluate import EvalConfig
from loraflow.schemas.config.task_card import SuccessCriterion, TaskCard
from loraflow.tasks.evaluation.badcases import analyse_badcases
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.report import log_eval_report, write_eval_report
from loraflow.schemas.results import ModelEvaluation
from loraflow.tasks.evaluation.evaluate import evaluate_baselines, score_rows, summarize_evaluation
from loraflow.tasks.evaluation.field_metrics import resolve_fields
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.evaluation.metrics import aggregate
from loraflow.tasks.evaluation.promotion import should_promote

TASK_CARD = TaskCard(name="tickets", success_criteria=[SuccessCriterion(metric="json_field_accuracy", threshold=0.5)])
PRODUCTS = ["kettle", "printer", "耳机", "键盘", "router", "lamp"]


def _record(i: int) -> dict:
    zh = i % 3 == 0
    text = f"订单 {1000 + i} 的{PRODUCTS[i % 6]}坏了。" if zh else f"Order {1000 + i}: the {PRODUCTS[i % 6]} is broken <b>&amp;"
    return {"id": f"t{i:02d}", "messages": [{"role": "system", "content": "Extract the ticket as JSON."}, {"role": "user", "content": text}],
            "reference": json.dumps({"order": str(1000 + i), "product": PRODUCTS[i % 6]}, ensure_ascii=False),
            "metadata": {"language": "zh" if zh else "en", "category": "damage" if i % 2 else "defect"}}


def _predict(i: int, quality: int) -> str:
    """A model that gets the order right for i % quality != 0, and the product right on even cases."""
    if quality and i % quality == 0:
        return "Sorry, I cannot help with that."
    return json.dumps({"order": str(1000 + i), "product": PRODUCTS[i % 6] if i % 2 == 0 else "unknown"}, ensure_ascii=False)


def write_fake_run(root: Path, with_extras: bool = True) -> Path:
    """A run folder as the pipeline leaves it: predictions per model, metrics.json, and optionally training log, badcases, promotion."""
    config = EvalConfig(slice_by=["language", "category"], bootstrap_samples=200)
    results = {}
    fields = resolve_fields({}, [json.loads(_record(i)["reference"]) for i in range(24)])  # order: text, product: categorical
    for label, quality in (("base", 2), ("candidate", 5), ("champion", 4)):
        rows = score_rows([{**_record(i), "prediction": _predict(i, quality)} for i in range(24)], fields)
        path = root / "eval" / f"predictions_{label}.jsonl"
        write_jsonl(path, rows)
        metrics = aggregate(rows, config.slice_by)
        results[label] = ModelEvaluation(label=label, predictions=str(path), metrics=metrics["overall"],
                                         by_language=metrics["by_language"], by_slice=metrics["by_slice"], fields=metrics["fields"])
    train = [{**_record(i), "messages": _record(i)["messages"] + [{"role": "assistant", "content": _record(i)["reference"]}]}
             for i in range(30, 60)]
    write_jsonl(root / "data" / "train.jsonl", train)
    test = [{**_record(i), "messages": _record(i)["messages"] + [{"role": "assistant", "content": _record(i)["reference"]}]}
            for i in range(24)]
    write_jsonl(root / "data" / "test.jsonl", test)
    results.update(evaluate_baselines(str(root / "data" / "train.jsonl"), str(root / "data" / "test.jsonl"), config, TASK_CARD, str(root)))
    summary = summarize_evaluation(results, TASK_CARD, config, str(root))
    if with_extras:
        history = [{"loss": 2.5 - 0.04 * s, "learning_rate": 2e-4, "epoch": s / 20, "step": s} for s in range(1, 61)]
        history += [{"eval_loss": 2.2 - 0.3 * k, "epoch": k, "step": 20 * k} for k in (1, 2, 3)]
        history.append({"train_runtime": 42.5, "train_loss": 1.6, "epoch": 3.0, "step": 60})
        (root / "train").mkdir(parents=True, exist_ok=True)
        (root / "train" / "log_history.json").write_text(json.dumps(history))
        analyse_badcases(str(root / "eval" / "predictions.jsonl"), str(root / "data" / "train.jsonl"), TASK_CARD, 8, str(root))
        decision = should_promote(summary, TASK_CARD, config)
        (root / "eval" / "promotion.json").write_text(json.dumps(asdict(decision)))
    return root


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def test_report_is_self_contained_with_every_section(tmp_path: Path):
    run = write_fake_run(tmp_path / "run")
    path = write_eval_report(str(run))
    assert path == str(run / "eval" / "report.html")
    page = Path(path).read_text(encoding="utf-8")
    # No external assets: every image is inline PNG, no scripts, stylesheets or remote URLs.
    assert not re.search(r"(src|href)=['\"](?!data:|#)", page) and "<script" not in page and "http" not in page
    images = _images(page)
    # product confusion matrix + distribution, metrics, 2 slices, loss, causes
    assert len(images) == 7 and all(img.startswith(b"\x89PNG") for img in images)
    for section in ("decision", "fields", "metrics", "slices", "training", "ratings", "worst"):
        assert f"<section id='{section}'>" in page
    assert "DO NOT PROMOTE" in page or "PROMOTE: the candidate becomes" in page
    assert "candidate − base" in page and "candidate − champion" in page and "json_field_accuracy" in page
    assert "By category" in page and "By language" in page and "Δ vs champion" in page
    assert "Train loss averaged over the whole run (every epoch) 1.600" in page and "Validation loss at 3 points" in page
    assert page.index("<section id='fields'>") < page.index("<section id='metrics'>")  # the per-field table leads
    assert "product <span class='tag'>categorical, 6 classes</span>" in page and "order <span class='tag'>free text</span>" in page
    assert "majority <span class='muted'>(trivial baseline)</span>" in page and "confusion matrix" in page
    worst = page[page.index("<section id='worst'>"):]
    assert "Extract the ticket as JSON." not in worst  # the shared system prompt is not repeated in every case
    assert "<td class='wrong'>unknown</td><td class='muted'>should be" in worst
    assert "Order 1005: the lamp is broken &lt;b&gt;&amp;amp;" in page  # user text is escaped, never markup
    assert "probable cause" in page and "<span class='tag'>" in page


def test_report_without_optional_outputs_says_what_is_missing(tmp_path: Path):
    run = write_fake_run(tmp_path / "run", with_extras=False)
    page = Path(write_eval_report(str(run))).read_text(encoding="utf-8")
    assert "No promotion decision yet" in page and "No training log" in page and "No human or LLM-judge ratings" in page
    assert "No badcase analysis" in page and "lowest-scoring predictions shown" in page
    with pytest.raises(LoraflowError, match="metrics.json does not exist"):
        write_eval_report(str(tmp_path / "empty"))


def test_report_shows_ratings_and_logs_to_mlflow(tmp_path: Path):
    mlflow = pytest.importorskip("mlflow")
    run = write_fake_run(tmp_path / "run", with_extras=False)
    uri = os.environ["MLFLOW_TRACKING_URI"]  # the session's store (tests/conftest.py): no per-test schema migration
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment(f"report-{uuid.uuid4().hex}")).info.run_id
    (run / "run.json").write_text(json.dumps({"mlflow_run_id": run_id, "mlflow_tracking_uri": uri}))
    dims = {d: {"n": 4, "mean": 3.5, "ci_low": 3.0, "ci_high": 4.0, "std": 0.5, "alpha_ordinal": 0.71, "alpha_interval": 0.7}
            for d in ("accuracy", "relevance", "fluency", "completeness", "safety")}
    (run / "eval" / "human_eval.json").write_text(json.dumps({"n_ratings": 8, "n_cases": 4, "raters": ["a", "b"], "dimensions": dims}))
    path = write_eval_report(str(run))
    page = Path(path).read_text(encoding="utf-8")
    assert "8 ratings of 4 cases by 2 rater(s)" in page and "0.71" in page and run_id in page
    assert log_eval_report(str(run), path) == run_id
    assert [a.path for a in client.list_artifacts(run_id, "report")] == ["report/report.html"]


def test_cli_writes_the_report_and_fails_in_one_line_without_metrics(tmp_path: Path, capsys):
    from loraflow.cli import main

    run = write_fake_run(tmp_path / "run", with_extras=False)
    assert main(["report", str(run), "--no-mlflow"]) == 0
    assert f"report: {(run / 'eval' / 'report.html').resolve().as_uri()}" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.json does not exist" in err
