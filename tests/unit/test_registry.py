"""MLflow Model Registry on SQLite: register a merged tiny Llama, promote/rollback round trips, resolve models:/ URIs."""
import json
import shutil
from pathlib import Path

import pytest
from tests.unit.deploy_support import PROMPTS, build_adapter, build_tiny_base

from loraflow.cli import main
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.deploy.merge import merge_adapter
from loraflow.tasks.deploy.registry import (
    champion_history, champion_version, list_versions, promote, register_model, resolve_model, rollback,
)


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    base = build_tiny_base(root / "base")
    adapter = build_adapter(base, root / "adapter")
    result = merge_adapter(str(base), str(adapter), str(root / "run"), "lora", PROMPTS, 1e-3, max_new_tokens=4)
    return result["merged_path"], str(adapter)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An MLflow SQLite file with its tables created once (the migrations take seconds; copying it does not)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("db") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def store(tmp_path, monkeypatch, empty_db):
    """A fresh SQLite tracking+registry store with one open pipeline run."""
    from mlflow import MlflowClient

    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LORAFLOW_HOME", str(tmp_path / "home"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("ticket-extraction", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    return uri, client, run_id


def test_register_logs_on_the_run_and_sets_challenger(merged, store):
    merged_path, _ = merged
    uri, client, run_id = store
    info = register_model(merged_path, run_id, "ticket", {"data_hash": "d1", "config_hash": "c1", "metric.exact_match": "0.8"})
    assert info["version"] == "1" and info["model_uri"] == "models:/ticket/1"
    version = client.get_model_version("ticket", "1")
    assert version.aliases == ["challenger"] and version.run_id == run_id
    assert version.tags["data_hash"] == "d1" and version.tags["run_id"] == run_id and version.tags["metric.exact_match"] == "0.8"
    assert client.get_run(run_id).info.status == "RUNNING"  # the pipeline's run stays open
    requirements = (resolve_model("models:/ticket/1", tracking_uri=uri).rsplit("/", 1)[0] + "/requirements.txt")
    assert any(line.startswith("transformers==") for line in open(requirements))
    assert champion_version("ticket") is None
    # an MLflow logged model of the run (its "Logged models"), holding the files the version points at
    [logged] = client.search_logged_models(experiment_ids=[client.get_run(run_id).info.experiment_id])
    assert logged.source_run_id == run_id and logged.status.to_proto() == 2  # READY
    assert version.source == logged.artifact_location and [o.model_id for o in client.get_run(run_id).outputs.model_outputs] == [logged.model_id]
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "ticket", "version": "1"}]
    from mlflow.utils.file_utils import local_file_uri_to_path

    run_files = Path(local_file_uri_to_path(client.get_run(run_id).info.artifact_uri)) / "merged_model"
    assert [p.name for p in run_files.iterdir()] == ["model_card.md"]  # the weights once, in the logged model


def test_registered_model_round_trips_exactly(merged, store):
    import mlflow.transformers
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_path, _ = merged
    uri, _, run_id = store
    register_model(merged_path, run_id, "ticket", {})
    local = resolve_model("models:/ticket@challenger")
    assert resolve_model("models:/ticket@challenger") == local  # cached, not downloaded twice
    ids = AutoTokenizer.from_pretrained(merged_path).apply_chat_template(
        PROMPTS[0], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(merged_path)(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(local)(input_ids=ids).logits
        components = mlflow.transformers.load_model("models:/ticket/1", return_type="components")
        flavor = components["model"](input_ids=ids).logits
    assert torch.equal(want, got) and torch.equal(want, flavor)
    assert AutoTokenizer.from_pretrained(local).chat_template == AutoTokenizer.from_pretrained(merged_path).chat_template


def test_promote_and_rollback_round_trip(merged, store):
    merged_path, _ = merged
    uri, client, run_id = store
    for _ in range(3):
        register_model(merged_path, run_id, "ticket", {})
    promote("ticket", "1", "first model")
    event = promote("ticket", "2", "beats v1 on exact match")
    assert event.previous == "1" and event.name == "ticket" and champion_version("ticket") == "2"
    assert client.get_model_version("ticket", "2").tags["previous_champion"] == "1"
    assert client.get_model_version("ticket", "3").aliases == ["challenger"]
    promote("ticket", "3", "beats v2")
    assert client.get_model_version("ticket", "3").aliases == ["champion"]  # no longer the challenger
    first_download = resolve_model("models:/ticket@champion")

    rollback("ticket", None, "v3 answers Chinese tickets wrongly")
    assert champion_version("ticket") == "2"
    rolled_back = client.get_model_version("ticket", "3").tags
    assert rolled_back["rollback_reason"] == "v3 answers Chinese tickets wrongly" and "rolled_back_at" in rolled_back
    assert resolve_model("models:/ticket@champion") != first_download  # the alias, not a stale cache, decides
    rollback("ticket", None, "v2 too")  # walks back the chain of promotions
    assert champion_version("ticket") == "1"
    with pytest.raises(LoraflowError, match="records no previous champion"):
        rollback("ticket", None, "nothing before v1")
    rollback("ticket", "3", "v3 fixed after all")
    assert champion_version("ticket") == "3"
    history = champion_history("ticket")
    assert [(e["action"], e["version"], e["previous"]) for e in history] == [
        ("promote", "1", None), ("promote", "2", "1"), ("promote", "3", "2"),
        ("rollback", "2", "3"), ("rollback", "1", "2"), ("rollback", "3", "1"),
    ]
    assert history[3]["reason"] == "v3 answers Chinese tickets wrongly"
    assert [row["version"] for row in list_versions("ticket")] == ["3", "2", "1"]


def test_registry_mistakes_fail_with_one_sentence(merged, store):
    merged_path, adapter_path = merged
    _, _, run_id = store
    with pytest.raises(LoraflowError, match="is a LoRA adapter"):
        register_model(adapter_path, run_id, "ticket", {})
    with pytest.raises(LoraflowError, match="no registered model 'ticket'"):
        promote("ticket", "1", "x")
    register_model(merged_path, run_id, "ticket", {})
    with pytest.raises(LoraflowError, match="has no version 7"):
        promote("ticket", "7", "x")
    with pytest.raises(LoraflowError, match="has no champion"):
        rollback("ticket", None, "x")
    with pytest.raises(LoraflowError, match="has no alias 'champion'"):
        resolve_model("models:/ticket@champion")
    with pytest.raises(LoraflowError, match="neither an existing folder nor a registry URI"):
        resolve_model("models:ticket")


def test_cli_promote_rollback_versions(merged, store, capsys):
    merged_path, _ = merged
    _, _, run_id = store
    register_model(merged_path, run_id, "ticket", {"data_hash": "d1"})
    register_model(merged_path, run_id, "ticket", {"data_hash": "d2"})
    assert main(["promote", "--version", "1", "--reason", "baseline"]) == 0
    assert main(["promote", "--model", "ticket", "--version", "2", "--reason", "better"]) == 0
    assert "champion -> version 2 (was 1)" in capsys.readouterr().out
    assert main(["rollback", "--reason", "regression in production"]) == 0
    assert "rolled back to version 1 (was 2)" in capsys.readouterr().out
    assert main(["versions", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["aliases"]) for v in listing["versions"]] == [("2", []), ("1", ["champion"])]
    assert listing["history"][-1]["reason"] == "regression in production"
    assert main(["promote", "--version", "9", "--reason", "x"]) == 1
    assert "has no version 9" in capsys.readouterr().err
