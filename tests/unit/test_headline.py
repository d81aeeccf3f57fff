"""The run's headline: each field for candidate vs base vs majority (and any other baseline), and the gate's decision."""
import json

from loraflow.schemas.results import RunOutcome, TrackingRun
from loraflow.tasks.tracking.headline import field_table, headline_lines, run_description

OUTCOME = RunOutcome.model_validate({
    "success_metric": "json_field_score", "candidate": 0.8125, "base": 0.4,
    "fields": [{"field": "category", "stat": "accuracy", "classical": 0.5, "majority": 0.35, "base": 0.4, "candidate": 0.8125},
               {"field": "priority", "stat": "macro_f1", "majority": 0.2, "base": 0.25, "candidate": 0.3}],
    "promotion": {"promote": False, "reasons": ["pass: candidate beats base", "fail: priority macro-F1 CI vs majority includes 0"]},
    "registered_model": {"name": "tickets", "version": "3", "model_uri": "models:/tickets/3", "source": "runs:/x/model",
                         "merged_path": "model/merged", "aliases": ["challenger"]},
})


def test_the_headline_puts_candidate_base_and_majority_first_then_any_other_baseline():
    lines = headline_lines(OUTCOME)
    assert lines[0] == "json_field_score: candidate 0.812 vs base 0.400"
    assert lines[1] == "category accuracy: candidate 0.812, base 0.400, majority 0.350, classical 0.500"
    assert lines[2] == "priority macro_f1: candidate 0.300, base 0.250, majority 0.200"
    assert lines[3:] == ["promotion gate: KEEP CHAMPION (1 check(s) failed)", "  fail: priority macro-F1 CI vs majority includes 0"]
    assert field_table(OUTCOME) == {"field": ["category", "priority"], "stat": ["accuracy", "macro_f1"],
                                    "candidate": [0.8125, 0.3], "base": [0.4, 0.25], "majority": [0.35, 0.2], "classical": [0.5, None]}


def test_the_verdict_says_not_promoted_when_there_is_no_champion_to_keep():
    from loraflow.tasks.tracking.headline import gate_verdict

    assert gate_verdict(True, []) == "PROMOTE"
    assert gate_verdict(False, ["fail: candidate ties with base"]) == "KEEP CHAMPION"
    assert gate_verdict(False, ["skip: no champion yet: the candidate would become the first one"]) == "NOT PROMOTED (no champion yet)"


def test_the_run_description_and_field_table_land_on_the_mlflow_run(tmp_path):
    from loraflow.tasks.tracking.runs import client, ensure_experiment, log_headline

    description = run_description(OUTCOME, "tickets")
    assert "promotion gate: **KEEP CHAMPION**" in description and "| category | accuracy | 0.812 | 0.400 | 0.350 | 0.500 |" in description
    assert "- fail: priority macro-F1" in description and "pass:" not in description and "version 3 (challenger)" in description

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = client(uri).create_run(ensure_experiment(uri, "headline")).info.run_id
    log_headline(TrackingRun(uri, run_id), OUTCOME, "tickets")
    assert client(uri).get_run(run_id).data.tags["mlflow.note.content"] == description
    table = json.loads(open(client(uri).download_artifacts(run_id, "eval/field_scores.json", str(tmp_path))).read())
    assert table["columns"][:3] == ["field", "stat", "candidate"] and len(table["data"]) == 2
