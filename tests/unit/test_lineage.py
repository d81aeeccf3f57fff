"""Dataset lineage: seeding v1, growing a version from feedback, the frozen test set, MLflow feedback lineage."""
import json

import pytest

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.lineage import (
    commit_version, latest_version, list_versions, prepare_version, record_feedback_lineage, seed_lineage, split_feedback,
    supersede,
)


def rec(rid: str, prompt: str, answer: str, **meta) -> dict:
    return {"id": rid, "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], "metadata": meta}


def feedback_rec(fid: str, prompt: str, answer: str) -> dict:
    return rec(f"feedback-{fid}", prompt, answer, source="feedback", feedback_id=fid, feedback_batch_id="fb-1")


@pytest.fixture
def run_data(tmp_path):
    """A finished run's data/ folder: train (one augmented record), val, test."""
    data = tmp_path / "run" / "data"
    write_jsonl(data / "train.jsonl", [rec("a", "q a", "ans a"), rec("b", "q b", "ans b"),
                                       rec("a-aug", "q a!", "ans a", augment_method="paraphrase", parent_id="a")])
    write_jsonl(data / "val.jsonl", [rec("c", "q c", "ans c")])
    write_jsonl(data / "test.jsonl", [rec("t1", "q t1", "ans t1"), rec("t2", "q t2", "ans t2")])
    return data


def test_seed_commits_v1_once_without_augmented_records(tmp_path, run_data):
    root = tmp_path / "lineage"
    v1 = seed_lineage(root, run_data, {"mlflow_run_id": "r1"})

    assert (v1["version"], v1["parent"], v1["status"]) == (1, None, "committed")
    assert [r["id"] for r in read_jsonl(root / "v1" / "train.jsonl")] == ["a", "b"]
    assert v1["counts"] == {"train": 2, "val": 1, "test": 2, "feedback_eval": 0}
    assert len(v1["content_hash"]) == 64 and v1["source"] == {"kind": "finetune", "mlflow_run_id": "r1"}
    assert json.loads((root / "v1" / "manifest.json").read_text())["content_hash"] == v1["content_hash"]
    assert seed_lineage(root, run_data) is None  # later finetune runs leave the lineage alone
    assert [m["version"] for m in list_versions(root)] == [1]


def test_seed_names_missing_split_files(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(LoraflowError, match="train, val, test.jsonl"):
        seed_lineage(tmp_path / "lineage", tmp_path / "data")


def test_split_feedback_is_deterministic_and_near_the_share():
    records = [feedback_rec(str(i), f"q{i}", "a") for i in range(1000)]
    train, held = split_feedback(records, 0.2, salt="fb-1")
    again_train, again_held = split_feedback(list(reversed(records)), 0.2, salt="fb-1")
    assert {r["id"] for r in held} == {r["id"] for r in again_held}
    assert 150 <= len(held) <= 250 and len(train) + len(held) == 1000
    assert split_feedback(records, 0.0)[1] == []
    with pytest.raises(LoraflowError, match="feedback_eval_share"):
        split_feedback(records, 1.0)


def test_supersede_drops_existing_answers_to_a_corrected_prompt_after_normalisation():
    existing = [rec("a", "Where is my  order?", "old answer"), rec("b", "other", "x")]
    kept, dropped = supersede(existing, [feedback_rec("f1", "Where is my order?", "new answer")])
    assert [r["id"] for r in kept] == ["b"] and dropped == ["a"]


def test_prepare_then_commit_grows_a_version_and_keeps_the_test_set_frozen(tmp_path, run_data):
    root = tmp_path / "lineage"
    seed_lineage(root, run_data)
    corrections = [feedback_rec(str(i), f"feedback question {i}", f"fixed {i}") for i in range(20)]
    corrections.append(feedback_rec("sup", "q b", "better ans b"))  # answers an existing prompt anew
    write_jsonl(tmp_path / "feedback.jsonl", corrections)
    write_jsonl(tmp_path / "relabel.jsonl", [{"id": "feedback-r1"}])

    prepared = prepare_version(root, str(tmp_path / "feedback.jsonl"), "fb-1", 0.25, str(tmp_path / "relabel.jsonl"))

    ids = prepared["feedback_ids"]
    assert prepared["version"] == 2 and prepared["parent"] == 1
    assert prepared["frozen_test"] == str(root / "v1" / "test.jsonl")
    assert len(ids["train"]) + len(ids["eval"]) == 21 and ids["eval"]
    inputs = read_jsonl(prepared["input_path"])
    assert [r["id"] for r in inputs[:2]] == ["a", "c"]  # parent originals first, the superseded "b" gone
    assert {r["metadata"]["feedback_id"] for r in inputs[2:]} == set(ids["train"])
    assert {r["metadata"]["feedback_id"] for r in read_jsonl(root / "v2" / "feedback_eval.jsonl")} == set(ids["eval"])
    assert (root / "v2" / "relabel_queue.jsonl").is_file()
    assert latest_version(root)["version"] == 1  # prepared is not committed

    # What the data stages made of it: one offered feedback record deduplicated away, one record moved into test.
    out = tmp_path / "retrain" / "data"
    trained = [r for r in inputs if r["metadata"].get("feedback_id") != ids["train"][0]]
    write_jsonl(out / "train.jsonl", trained[:-1])
    write_jsonl(out / "val.jsonl", trained[-1:])
    write_jsonl(out / "test.jsonl", read_jsonl(run_data / "test.jsonl") + [rec("moved", "q t1 ", "ans t1")])

    committed = commit_version(prepared, out, {"mlflow_run_id": "r2"})

    assert committed["status"] == "committed" and latest_version(root)["version"] == 2
    assert (root / "v2" / "test.jsonl").read_bytes() == (root / "v1" / "test.jsonl").read_bytes()
    assert committed["feedback_ids"]["dropped"] == [ids["train"][0]]
    assert sorted(committed["feedback_ids"]["trained"]) == sorted(ids["train"][1:])
    assert committed["superseded"] == ["b"] and committed["feedback_batches"] == ["fb-1"]
    assert committed["content_hash"] != list_versions(root)[0]["content_hash"]
    with pytest.raises(LoraflowError, match="already in lineage version v2"):
        prepare_version(root, str(tmp_path / "feedback.jsonl"), "fb-1", 0.25)


def test_prepare_on_an_empty_lineage_says_how_to_seed_it(tmp_path):
    write_jsonl(tmp_path / "feedback.jsonl", [])
    with pytest.raises(LoraflowError, match="loraflow run CONFIG"):
        prepare_version(tmp_path / "lineage", str(tmp_path / "feedback.jsonl"), "fb-1", 0.2)


def test_record_feedback_lineage_tags_the_run_and_the_registered_version(tmp_path, run_data):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("lineage-test", artifact_location=str(tmp_path / "artifacts")))
    client.create_registered_model("lineage-model")
    version = client.create_model_version("lineage-model", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    root = tmp_path / "lineage"
    seed_lineage(root, run_data)
    write_jsonl(tmp_path / "feedback.jsonl", [feedback_rec("f1", "new q", "new a")])
    prepared = prepare_version(root, str(tmp_path / "feedback.jsonl"), "fb-9", 0.0)
    write_jsonl(run_data / "train.jsonl", read_jsonl(prepared["input_path"]))  # the data stages kept every record
    committed = commit_version(prepared, run_data)

    recorded = record_feedback_lineage(uri, run.info.run_id, {"name": "lineage-model", "version": version.version}, committed)

    tags = client.get_run(run.info.run_id).data.tags
    assert tags["feedback.batch_id"] == "fb-9" and tags["feedback.trained_ids"] == "f1" and tags["lineage.version"] == "2"
    version_tags = client.get_model_version("lineage-model", version.version).tags
    assert version_tags["feedback.trained_ids"] == "f1" and version_tags["feedback.lineage"] == recorded["artifact_uri"]
    document = json.loads((tmp_path / "artifacts" / run.info.run_id / "artifacts" / "feedback" / "feedback_lineage.json").read_text())
    assert document["feedback_ids"]["trained"] == ["f1"] and document["registered_model"]["name"] == "lineage-model"
    assert latest_version(root)["source"]["model_version"] == str(version.version)
