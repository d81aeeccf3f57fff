"""Preference pairs from feedback: corrections over the model's answer, thumbs-down under an accepted answer, lineage."""
import pytest

from loraflow.schemas.feedback import FeedbackIn
from loraflow.tasks.feedback.export import export_feedback
from loraflow.tasks.feedback.store import FeedbackStore
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.lineage import commit_version, prepare_version, seed_lineage


def item(question: str, output: str, rating="down", correction: str | None = None) -> FeedbackIn:
    return FeedbackIn(messages=[{"role": "user", "content": question}], output=output, rating=rating,
                      correction=correction, model_version="tickets@3")


@pytest.fixture
def exported(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    ids = {
        "fixed": store.add(item("ticket 1", '{"priority": "low"}', rating=2, correction='{"priority": "high"}'))[0]["id"],
        "same": store.add(item("ticket 2", "fine", rating=1, correction="fine"))[0]["id"],  # no contrast: no pair
        "up": store.add(item("ticket 3", '{"priority": "medium"}', rating="up"))[0]["id"],
        "down": store.add(item("ticket 3", '{"priority": "low"}'))[0]["id"],
        "alone": store.add(item("ticket 4", '{"priority": "low"}'))[0]["id"],  # no accepted answer to pair with
    }
    store.dispose()
    return export_feedback(f"sqlite:///{tmp_path / 'feedback.db'}", str(tmp_path / "out")), ids


def test_corrections_and_thumbs_down_become_pairs_with_their_feedback_ids(exported):
    summary, ids = exported
    pairs = {p["id"]: p for p in read_jsonl(summary.pairs_path)}
    fixed, down = f"pair-{ids['fixed']}", f"pair-{ids['up']}-{ids['down']}"
    assert summary.pairs == {fixed: {"chosen": ids["fixed"], "rejected": ids["fixed"]},
                                down: {"chosen": ids["up"], "rejected": ids["down"]}}
    assert pairs[fixed]["messages"][-1]["content"] == '{"priority": "high"}' and pairs[fixed]["rejected"] == '{"priority": "low"}'
    assert pairs[down]["messages"][-1]["content"] == '{"priority": "medium"}' and pairs[down]["rejected"] == '{"priority": "low"}'
    assert pairs[fixed]["metadata"]["pair_source"] == "correction" and pairs[down]["metadata"]["pair_source"] == "accepted_answer"
    assert all(p["metadata"]["source"] == "feedback" for p in pairs.values())
    assert summary.records == 2  # the supervised records are still written beside the pairs


def test_lineage_names_the_pairs_and_which_of_them_were_trained(tmp_path, exported):
    summary, ids = exported
    data = tmp_path / "run" / "data"
    pair = {"id": "p0", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "rejected": "b", "metadata": {}}
    for name in ("train", "val", "test"):
        write_jsonl(data / f"{name}.jsonl", [dict(pair, id=f"{name}0")])
    root = tmp_path / "lineage"
    seed_lineage(root, data)
    prepared = prepare_version(root, summary.pairs_path, summary.batch_id, 0.0)
    inputs = read_jsonl(prepared["input_path"])
    assert all("rejected" in r for r in inputs) and len(inputs) == 4
    out = tmp_path / "retrain" / "data"
    write_jsonl(out / "train.jsonl", inputs[:-1])  # the data stages dropped the last pair
    write_jsonl(out / "val.jsonl", [])
    write_jsonl(out / "test.jsonl", read_jsonl(data / "test.jsonl"))
    committed = commit_version(prepared, out)
    assert committed["feedback_pairs"] == summary.pairs
    assert committed["feedback_pairs_trained"] == [inputs[2]["id"]]
