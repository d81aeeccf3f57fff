"""Human evaluation: stratified export, rating-file validation, aggregation, agreement and MLflow logging."""
import csv
import json
import os
import uuid
from pathlib import Path

import pytest

from loraflow.schemas.human_eval import JSON_RUBRIC_DIMENSIONS, RUBRIC_DIMENSIONS
from loraflow.tasks.evaluation.agreement import krippendorff_alpha, mean_confidence_interval
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.human_eval import export_human_eval, import_human_eval, stratified_sample
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl


def _prediction(i: int, language: str) -> dict:
    return {
        "id": f"{language}-{i:03d}",
        "messages": [{"role": "system", "content": "Extract the ticket."}, {"role": "user", "content": f"ticket {i} </script><!-- 工单"}],
        "reference": f'{{"product": "p{i}"}}',
        "prediction": f'{{"product": "p{i % 3}"}}',
        "metadata": {"language": language},
        "scores": {"exact_match": float(i % 3 == 0)},
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    rows = [_prediction(i, "en") for i in range(40)] + [_prediction(i, "zh") for i in range(10)]
    write_jsonl(tmp_path / "run" / "eval" / "predictions.jsonl", rows)
    return tmp_path / "run"


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "rater", *RUBRIC_DIMENSIONS, "comment"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _ratings(ids: list[str], rater: str, base: int) -> list[dict]:
    return [{"id": i, "rater": rater, **{d: 1 + (base + k) % 5 for d in RUBRIC_DIMENSIONS}, "comment": ""} for k, i in enumerate(ids)]


def test_krippendorff_alpha_matches_the_published_example():
    # Krippendorff (2011) reliability data: 4 observers, 12 units, missing values.
    data = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    units: dict[str, dict[str, float]] = {}
    for rater, values in data.items():
        for unit, value in enumerate(values):
            if value is not None:
                units.setdefault(str(unit), {})[rater] = value
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha({"a": {"x": 3, "y": 3}, "b": {"x": 3, "y": 3}}) is None


def test_mean_confidence_interval_brackets_the_mean():
    stats = mean_confidence_interval([1, 2, 3, 4, 5] * 4, seed=1)
    assert stats["n"] == 20 and stats["mean"] == 3.0
    assert stats["ci_low"] < 3.0 < stats["ci_high"]


def test_stratified_sample_is_seeded_and_keeps_small_slices():
    rows = [_prediction(i, "en") for i in range(90)] + [_prediction(i, "zh") for i in range(9)] + [_prediction(0, "fr")]
    sample = stratified_sample(rows, 20, seed=7)
    languages = [r["metadata"]["language"] for r in sample]
    assert len(sample) == 20 and len({r["id"] for r in sample}) == 20
    assert languages.count("fr") == 1 and languages.count("zh") == 2 and languages.count("en") == 17
    assert [r["id"] for r in stratified_sample(rows, 20, seed=7)] == [r["id"] for r in sample]
    assert {r["id"] for r in stratified_sample(rows, 20, seed=8)} != {r["id"] for r in sample}
    assert len(stratified_sample(rows, 500)) == 100


def test_export_writes_csv_jsonl_and_a_self_contained_page(run_dir: Path, tmp_path: Path):
    result = export_human_eval(str(run_dir), n=10, out_dir=str(tmp_path / "he"), seed=42)
    assert result["n"] == 10 and result["strata"] == {"en": 8, "zh": 2}
    cases = read_jsonl(result["jsonl"])
    assert {c["id"] for c in cases} <= {r["id"] for r in read_jsonl(run_dir / "eval" / "predictions.jsonl")}
    # JSON answers get the field rubric
    assert result["rubric"] == list(JSON_RUBRIC_DIMENSIONS)
    assert cases[0]["input"].startswith("[system] Extract the ticket.") and all(c[d] is None for c in cases for d in JSON_RUBRIC_DIMENSIONS)
    with open(result["csv"], encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [c["id"] for c in cases] and all(r["field_accuracy"] == "" for r in rows)
    page = Path(result["html"]).read_text(encoding="utf-8")
    assert "<script src" not in page and "http://" not in page and "https://" not in page and "<link" not in page
    embedded = page.split('<script type="application/json" id="cases">')[1].split("</script>")[0]
    assert "<" not in embedded and json.loads(embedded)[0]["id"] == cases[0]["id"]
    assert "new Blob" in page and all(d in page for d in JSON_RUBRIC_DIMENSIONS) and "keydown" in page
    shown = {c["id"]: c for c in json.loads(embedded)}
    for case in cases:  # the field view: the reference's product beside the model's, marked as they compare
        [field] = shown[case["id"]]["fields"]
        ref, out = json.loads(case["reference"])["product"], json.loads(case["output"])["product"]
        assert (field["field"], field["reference"], field["output"], field["status"]) == ("product", ref, out, "same" if ref == out else "different")
    again = export_human_eval(str(run_dir), n=10, out_dir=str(tmp_path / "he2"), seed=42)
    assert [c["id"] for c in read_jsonl(again["jsonl"])] == [c["id"] for c in cases]


def test_import_aggregates_two_raters_and_logs_to_mlflow(run_dir: Path, tmp_path: Path):
    mlflow = pytest.importorskip("mlflow")
    uri = os.environ["MLFLOW_TRACKING_URI"]  # the session's store (tests/conftest.py): no per-test schema migration
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment(f"he-{uuid.uuid4().hex}")).info.run_id
    (run_dir / "run.json").write_text(json.dumps({"mlflow_run_id": run_id, "mlflow_tracking_uri": uri}))
    ids = ["en-001", "en-002", "en-003", "zh-004", "zh-005", "en-006"]
    ann = _write_csv(tmp_path / "ann.csv", _ratings(ids, "ann", 0) + [{"id": "en-007", "rater": "ann", "comment": "skipped"}])
    bob_rows = _ratings(ids, "", 1)  # blank rater: the file name names the rater
    write_jsonl(tmp_path / "bob.jsonl", bob_rows)

    summary = import_human_eval(str(run_dir), [str(ann), str(tmp_path / "bob.jsonl")])

    assert summary["raters"] == ["ann", "bob"] and summary["n_cases"] == 6 and summary["n_ratings"] == 12
    assert summary["n_shared_cases"] == 6
    accuracy = summary["dimensions"]["accuracy"]
    # ann scores 1,2,3,4,5,1; bob 2,3,4,5,1,2: per-case means average to 2.75
    assert accuracy["mean"] == pytest.approx(2.75)
    assert accuracy["ci_low"] <= accuracy["mean"] <= accuracy["ci_high"]
    assert accuracy["alpha_ordinal"] is not None and accuracy["alpha_ordinal"] < 0.5
    assert set(summary["by_slice"]) == {"en", "zh"} and summary["by_slice"]["zh"]["n_cases"] == 2
    assert summary["mlflow_run_id"] == run_id
    metrics = client.get_run(run_id).data.metrics
    assert metrics["eval/human/accuracy/mean"] == pytest.approx(2.75) and metrics["eval/human/n_raters"] == 2
    assert "eval/human/safety/alpha" in metrics
    artifacts = {a.path for a in client.list_artifacts(run_id, "human_eval")}
    assert {"human_eval/aggregate.json", "human_eval/human_ratings.jsonl"} <= artifacts
    saved = json.loads((run_dir / "eval" / "human_eval.json").read_text())
    assert saved["dimensions"]["fluency"]["mean"] == summary["dimensions"]["fluency"]["mean"]
    assert len(read_jsonl(run_dir / "eval" / "human_ratings.jsonl")) == 12


@pytest.mark.parametrize("bad, shown", [(7, "7"), ("x", "'x'"), ("3.5", "'3.5'"), ("", "a blank")])
def test_a_bad_score_names_file_line_and_field(run_dir: Path, tmp_path: Path, bad, shown):
    rows = _ratings(["en-001", "en-002", "en-003"], "ann", 0)
    rows[1]["fluency"] = bad
    path = _write_csv(tmp_path / "ann.csv", rows)
    with pytest.raises(LoraflowError) as error:
        import_human_eval(str(run_dir), [str(path)])
    message = str(error.value)
    assert "ann.csv line 3" in message and "'fluency'" in message and shown in message


def test_bad_score_in_jsonl_and_unknown_ids_and_duplicates(run_dir: Path, tmp_path: Path):
    rows = _ratings(["en-001", "en-002"], "bob", 0)
    rows[1]["safety"] = 0
    write_jsonl(tmp_path / "bob.jsonl", rows)
    with pytest.raises(LoraflowError, match=r"bob\.jsonl row at line 2: field 'safety' has 0"):
        import_human_eval(str(run_dir), [str(tmp_path / "bob.jsonl")])
    path = _write_csv(tmp_path / "ann.csv", _ratings(["en-001", "nope"], "ann", 0))
    with pytest.raises(LoraflowError, match=r"ann\.csv line 3: id 'nope' is not a test case"):
        import_human_eval(str(run_dir), [str(path)])
    first = _write_csv(tmp_path / "a1.csv", _ratings(["en-001"], "ann", 0))
    second = _write_csv(tmp_path / "a2.csv", _ratings(["en-001"], "ann", 2))
    with pytest.raises(LoraflowError, match=r"rater 'ann' scored case 'en-001' more than once .*a1\.csv line 2.*a2\.csv line 2"):
        import_human_eval(str(run_dir), [str(first), str(second)])
    summary = import_human_eval(str(run_dir), [str(first)])
    assert summary["mlflow_run_id"] is None and summary["dimensions"]["accuracy"]["alpha_ordinal"] is None


def test_stratified_sample_is_proportional_and_covers_the_largest_strata_first():
    rows = [_prediction(i, "en") for i in range(40)] + [_prediction(i, "zh") for i in range(10)]
    assert sorted(r["metadata"]["language"] for r in stratified_sample(rows, 5)) == ["en"] * 4 + ["zh"]
    rows += [_prediction(i, "fr") for i in range(2)] + [_prediction(i, "de") for i in range(1)]
    assert sorted(r["metadata"]["language"] for r in stratified_sample(rows, 3)) == ["en", "fr", "zh"]
    assert sorted(r["metadata"]["language"] for r in stratified_sample(rows, 4)) == ["de", "en", "fr", "zh"]


@pytest.fixture
def main(tmp_path: Path, monkeypatch):
    """The loraflow CLI entry point, with the environment defaults it sets undone afterwards."""
    from loraflow.cli import main

    monkeypatch.setenv("LORAFLOW_HOME", str(tmp_path / "home"))
    saved = dict(os.environ)
    yield main
    os.environ.clear()
    os.environ.update(saved)


def test_cli_exports_imports_and_reports_a_bad_file_in_one_line(run_dir: Path, tmp_path: Path, capsys, main):
    assert main(["human-eval", "export", str(run_dir), "--n", "4", "--out", str(tmp_path / "he")]) == 0
    assert "exported 4 cases" in capsys.readouterr().out
    ids = [c["id"] for c in read_jsonl(tmp_path / "he" / "human_eval.jsonl")]
    good = _write_csv(tmp_path / "ann.csv", _ratings(ids, "ann", 0))
    assert main(["human-eval", "import", str(run_dir), str(good)]) == 0
    assert "4 ratings of 4 cases by 1 rater(s): ann" in capsys.readouterr().out
    rows = _ratings(ids, "ann", 0)
    rows[2]["completeness"] = 9
    assert main(["human-eval", "import", str(run_dir), str(_write_csv(tmp_path / "bad.csv", rows))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.csv line 4: field 'completeness' has 9" in err and "Traceback" not in err


def test_a_rubric_named_on_the_command_line_is_exported_and_imported(run_dir: Path, tmp_path: Path):
    result = export_human_eval(str(run_dir), n=4, out_dir=str(tmp_path / "he"), rubric=["accuracy", "tone=Is the tone polite?"])
    assert result["rubric"] == ["accuracy", "tone"]
    page = Path(result["html"]).read_text(encoding="utf-8")
    assert "<b>tone</b>: Is the tone polite?" in page
    cases = read_jsonl(result["jsonl"])
    write_jsonl(tmp_path / "ann.jsonl", [{"id": c["id"], "rater": "ann", "accuracy": 4, "tone": 2, "comment": ""} for c in cases])
    summary = import_human_eval(str(run_dir), [str(tmp_path / "ann.jsonl")])
    assert summary["rubric"] == ["accuracy", "tone"] and summary["dimensions"]["tone"]["mean"] == 2.0
    with pytest.raises(LoraflowError, match="'nonsense' is not a known dimension"):
        export_human_eval(str(run_dir), n=4, out_dir=str(tmp_path / "x"), rubric=["nonsense"])
    mixed = _write_csv(tmp_path / "bob.csv", _ratings([cases[0]["id"]], "bob", 0))
    with pytest.raises(LoraflowError, match="one rubric"):
        import_human_eval(str(run_dir), [str(tmp_path / "ann.jsonl"), str(mixed)])


def test_the_task_cards_rubric_recorded_by_evaluation_is_the_default(run_dir: Path, tmp_path: Path):
    (run_dir / "eval" / "metrics.json").write_text(json.dumps({"rubric": ["field_accuracy", "routing=Would this route the ticket right?"]}))
    result = export_human_eval(str(run_dir), n=3, out_dir=str(tmp_path / "he"))
    assert result["rubric"] == ["field_accuracy", "routing"]
    assert "<b>routing</b>: Would this route the ticket right?" in Path(result["html"]).read_text(encoding="utf-8")
    assert export_human_eval(str(run_dir), n=3, out_dir=str(tmp_path / "he2"), rubric=["accuracy"])["rubric"] == ["accuracy"]


def test_the_field_view_marks_missing_extra_and_non_json_answers():
    from loraflow.tasks.evaluation.human_eval_rubric import json_field_diff

    rows = json_field_diff('{"a": 1, "b": "x"}', '```json\n{"a": 1, "c": true}\n```')
    assert [(r["field"], r["status"]) for r in rows] == [("a", "same"), ("b", "missing"), ("c", "extra")]
    assert rows[2]["output"] == "true"
    assert json_field_diff('{"a": 1}', "sorry, no") == [{"field": "(whole answer)", "reference": '{"a": 1}', "output": "sorry, no", "status": "not JSON"}]
    assert json_field_diff("plain text", '{"a": 1}') is None
