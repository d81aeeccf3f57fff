"""Evaluation badcases become `down`-rated feedback once, and reach the relabel queue at the next export."""
import json

import pytest

from loraflow.tasks.feedback.badcase_import import import_badcases
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.export import export_feedback
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl


def _run_dir(tmp_path):
    run = tmp_path / "run"
    rows = [{"id": f"t{i}", "messages": [{"role": "system", "content": "JSON."}, {"role": "user", "content": f"ticket {i}"}],
             "reference": '{"category": "billing"}', "prediction": '{"category": "refund"}', "cause": "well_formed_but_wrong"}
            for i in range(3)]
    write_jsonl(run / "eval" / "badcases.jsonl", rows)
    (run / "run.json").write_text(json.dumps({"mlflow_run_id": "abc",
                                              "outcome": {"registered_model": {"name": "tickets", "version": "4",
                                                                               "model_uri": "models:/tickets/4",
                                                                               "source": "runs:/abc/model",
                                                                               "merged_path": str(run / "model" / "merged")}}}))
    return run


def test_badcases_are_stored_once_and_queued_for_relabelling(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    run = _run_dir(tmp_path)
    first = import_badcases(str(run), url)
    assert (first["stored"], first["already_present"], first["model_version"]) == (3, 0, "tickets/4")
    assert import_badcases(str(run), url)["already_present"] == 3  # importing again stores nothing new

    exported = export_feedback(url, str(tmp_path / "export"))
    queue = read_jsonl(exported.relabel_path)
    assert exported.records == 0 and len(queue) == 3  # no correction yet: relabel, do not train
    assert {q["metadata"]["badcase_id"] for q in queue} == {"t0", "t1", "t2"}


def test_a_run_without_badcases_is_a_clear_error(tmp_path):
    with pytest.raises(LoraflowError, match="badcases.jsonl does not exist"):
        import_badcases(str(tmp_path), f"sqlite:///{tmp_path / 'f.db'}")
