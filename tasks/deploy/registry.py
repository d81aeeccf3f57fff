"""MLflow Model Registry: register merged candidates, move the `champion` alias (promote/rollback), resolve models."""
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loraflow.schemas.results import AliasMove, Champion
from loraflow.tasks.common.errors import LoraflowError

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
# SQL stores keep registered-model tag values in a VARCHAR(5000); the oldest events are dropped to fit.
_HISTORY_LIMIT = 5000
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")


def _uri(tracking_uri: str | None) -> str:
    """The given URI, else $MLFLOW_TRACKING_URI, else the embedded SQLite store."""
    from loraflow.tasks.common.settings import mlflow_uri

    return mlflow_uri(tracking_uri)


def _client(tracking_uri: str | None) -> Any:
    """An MlflowClient with tracking and registry on the same store."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=_uri(tracking_uri), registry_uri=_uri(tracking_uri))


def pip_requirements() -> list[str]:
    """The pinned requirements logged with a model (explicit: MLflow's inference wrongly looks for torchvision)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "accelerate")]


def register_model(
    merged_path: str, run_id: str, name: str, tags: dict[str, str], *, tracking_uri: str | None = None,
    artifact_path: str = "merged_model", description: str = "", model_card: str = "",
) -> dict:
    """Log the merged model as an MLflow model of the pipeline's run (mlflow.transformers), register it, alias it `challenger`.

    Args:
        tags: lineage stored on the version (data hash, config hash, metrics...); the run id is always added.
        description: the version's description in the registry; model_card: markdown for the logged model's README.md.
    Returns:
        {"name", "version", "model_uri", "challenger_uri", "source"}.
    """
    import tempfile

    import mlflow.transformers
    from huggingface_hub import ModelCard
    from mlflow.entities import LoggedModelOutput
    from mlflow.exceptions import MlflowException
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = Path(merged_path)
    if (merged / "adapter_config.json").is_file():
        # A PEFT folder logged through mlflow.transformers reloads with random base weights; refuse it.
        raise LoraflowError(f"{merged_path} is a LoRA adapter, not a merged model; register the output of merge_adapter.")
    if not (merged / "config.json").is_file() or not any(merged.glob("*.safetensors")):
        raise LoraflowError(f"{merged_path} holds no merged model (config.json + *.safetensors); run the merge step first.")
    client = _client(tracking_uri)
    run = client.get_run(run_id)
    card = ModelCard(f"---\nlibrary_name: transformers\n---\n{model_card or f'loraflow candidate from MLflow run {run_id}.'}\n")
    # The local-checkpoint (path) form of log_model breaks on transformers 5 (MLflow 3.17 expects the pipeline
    # `impl` to be a class), so the merged model is loaded once in its stored dtype. save_model + client calls
    # (not the fluent log_model) keep the pipeline's run open and its experiment untouched.
    components = {"model": AutoModelForCausalLM.from_pretrained(merged, dtype="auto"), "tokenizer": AutoTokenizer.from_pretrained(merged)}
    # An MLflow 3 logged model of the run (its "Logged models" and the experiment's Models tab list it), holding the
    # one copy of the weights the registered version points at: the same bytes the run artifacts held before.
    logged = client.create_logged_model(run.info.experiment_id, name=artifact_path, source_run_id=run_id,
                                        model_type="transformers", tags={"loraflow.registered_model": name})
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        mlflow.transformers.save_model(
            components, str(local), task="llm/v1/chat", pip_requirements=pip_requirements(), model_card=card
        )
        client.log_model_artifacts(logged.model_id, str(local))
        client.log_artifact(run_id, str(local / "model_card.md"), artifact_path)  # the model card beside the run's reports
    del components
    client.finalize_logged_model(logged.model_id, "READY")
    try:
        client.create_registered_model(name, description="Merged loraflow fine-tunes; aliases champion/challenger.")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = logged.artifact_location
    version_tags = {key: str(value) for key, value in {**tags, "run_id": run_id}.items()}
    created = client.create_model_version(name, source=source, run_id=run_id, tags=version_tags, description=description or None,
                                          model_id=logged.model_id)
    version = str(created.version)
    # The links MLflow's own log_model + register_model make: the run's outputs name the model (its "Logged models"),
    # the model names its registered versions (mlflow.modelVersions, shown on the model's page).
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    client.set_logged_model_tags(logged.model_id, {"mlflow.modelVersions": json.dumps([{"name": name, "version": version}])})
    client.set_registered_model_alias(name, CHALLENGER, version)
    return {
        "name": name, "version": version, "model_uri": f"models:/{name}/{version}",
        "challenger_uri": f"models:/{name}@{CHALLENGER}", "source": source,
    }


def version_aliases(name: str, version: str, *, tracking_uri: str | None = None) -> list[str]:
    """The aliases that point at this version right now, as the registry has them."""
    return sorted(_client(tracking_uri).get_model_version(name, version).aliases)


def champion_version(name: str, *, tracking_uri: str | None = None) -> str | None:
    """The version the `champion` alias points at, or None (no alias or no such registered model)."""
    return _alias_version(_client(tracking_uri), name, CHAMPION)


def find_champion(name: str, *, tracking_uri: str | None = None) -> Champion | None:
    """The champion's version and local folder (downloaded once), or None when nothing is promoted yet."""
    version = champion_version(name, tracking_uri=tracking_uri)
    if version is None:
        return None
    return Champion(name=name, version=version, path=resolve_model(f"models:/{name}/{version}", tracking_uri=tracking_uri))


def promote(name: str, version: str, reason: str, *, tracking_uri: str | None = None) -> AliasMove:
    """Point `champion` at version (one alias write, so readers never see no champion) and record why."""
    client = _client(tracking_uri)
    version = _existing_version(client, name, version)
    previous = _alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, version)
    now = _now()
    if previous is not None and previous != version:
        client.set_model_version_tag(name, version, "previous_champion", previous)
    client.set_model_version_tag(name, version, "promoted_at", now)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    if _alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)  # it no longer challenges; it is the champion
    event = {"action": "promote", "version": version, "previous": previous, "reason": reason, "at": now}
    _append_history(client, name, event)
    return AliasMove(name=name, **event)


def rollback(name: str, to_version: str | None, reason: str, *, tracking_uri: str | None = None) -> AliasMove:
    """Move `champion` back to to_version, or to the champion before the current one, and record why."""
    client = _client(tracking_uri)
    current = _alias_version(client, name, CHAMPION)
    if current is None:
        raise LoraflowError(f"registered model {name!r} has no champion to roll back; promote a version first (loraflow promote).")
    if to_version is None:
        to_version = client.get_model_version(name, current).tags.get("previous_champion")
        if to_version is None:
            raise LoraflowError(
                f"champion version {current} of {name!r} records no previous champion; name the target with --to VERSION."
            )
    target = _existing_version(client, name, to_version)
    if target == current:
        raise LoraflowError(f"version {target} of {name!r} is already the champion; pick another version with --to.")
    client.set_registered_model_alias(name, CHAMPION, target)
    now = _now()
    client.set_model_version_tag(name, current, "rolled_back_at", now)
    client.set_model_version_tag(name, current, "rollback_reason", reason)
    client.set_model_version_tag(name, target, "restored_at", now)
    client.set_model_version_tag(name, target, "restored_from", current)
    event = {"action": "rollback", "version": target, "previous": current, "reason": reason, "at": now}
    _append_history(client, name, event)
    return AliasMove(name=name, **event)


def list_versions(name: str, *, tracking_uri: str | None = None) -> list[dict]:
    """Every version of a registered model, newest first, with its aliases and tags."""
    client = _client(tracking_uri)
    # search_model_versions leaves `aliases` empty on SQL stores; the registered model holds the alias map.
    aliases = _registered(client, name).aliases or {}
    rows = [
        {"version": str(v.version), "aliases": sorted(a for a, target in aliases.items() if str(target) == str(v.version)),
         "run_id": v.run_id, "created": v.creation_timestamp, "tags": dict(v.tags or {})}
        for v in client.search_model_versions(f"name='{name}'")
    ]
    return sorted(rows, key=lambda row: int(row["version"]), reverse=True)


def only_model_name(*, tracking_uri: str | None = None) -> str:
    """The name of the single registered model (what the CLI uses when --model is left out)."""
    names = sorted(m.name for m in _client(tracking_uri).search_registered_models())
    if len(names) != 1:
        raise LoraflowError(
            f"the MLflow registry at {_uri(tracking_uri)} holds {len(names)} registered models "
            f"({', '.join(names) or 'none - run the pipeline first'}); choose one with --model NAME "
            "(model_name in the promote and rollback Run forms)."
        )
    return names[0]


def champion_history(name: str, *, tracking_uri: str | None = None) -> list[dict]:
    """The promote/rollback events recorded on the registered model, oldest first."""
    model = _registered(_client(tracking_uri), name)
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))


def resolve_model(uri_or_path: str, *, tracking_uri: str | None = None, cache_dir: str | None = None) -> str:
    """A local model folder for a path, `models:/NAME@alias` or `models:/NAME/VERSION` (artifacts downloaded once)."""
    local = Path(uri_or_path)
    if local.exists():
        return str(local / "model") if (local / "MLmodel").is_file() else str(local)
    match = _URI.match(uri_or_path)
    if not match:
        raise LoraflowError(
            f"{uri_or_path!r} is neither an existing folder nor a registry URI; use a path, models:/NAME@ALIAS or models:/NAME/VERSION."
        )
    client = _client(tracking_uri)
    name, alias = match["name"], match["alias"]
    version = _alias_version(client, name, alias) if alias else _existing_version(client, name, match["version"])
    if version is None:
        raise LoraflowError(f"registered model {name!r} has no alias {alias!r}; promote a version first (loraflow promote).")
    from loraflow.tasks.common.settings import loraflow_home

    target = Path(cache_dir) if cache_dir else loraflow_home() / "registry-cache"
    target = target / name / version
    if not (target / "MLmodel").is_file():
        import mlflow.artifacts

        partial = target.with_name(f"{version}.partial")  # a half-finished download is never reused
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        source = client.get_model_version_download_uri(name, version)
        uri = _uri(tracking_uri)
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(partial), tracking_uri=uri, registry_uri=uri
        )
        _make_self_contained(Path(downloaded))
        Path(downloaded).rename(target)
        shutil.rmtree(partial, ignore_errors=True)
    return str(target / "model")


def _make_self_contained(mlflow_model_dir: Path) -> None:
    """Copy the logged tokenizer next to the weights so the `model` folder loads with from_pretrained alone."""
    tokenizer_dir = mlflow_model_dir / "components" / "tokenizer"
    model_dir = mlflow_model_dir / "model"
    if not (mlflow_model_dir / "MLmodel").is_file() or not model_dir.is_dir():
        raise LoraflowError(f"the registry artifacts in {mlflow_model_dir} are not a loraflow model (MLmodel + model/); re-register it.")
    for file in tokenizer_dir.glob("*") if tokenizer_dir.is_dir() else []:
        if not (model_dir / file.name).exists():
            shutil.copy2(file, model_dir / file.name)


def _registered(client: Any, name: str) -> Any:
    """The registered model, or a one-sentence error naming the registered ones."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        known = [m.name for m in client.search_registered_models()]
        raise LoraflowError(
            f"no registered model {name!r} in the MLflow registry; pass --model with one of {known or 'none (run the pipeline first)'}."
        ) from None


def _existing_version(client: Any, name: str, version: str) -> str:
    """The version as a string after checking it exists (one clear error otherwise)."""
    from mlflow.exceptions import MlflowException

    _registered(client, name)
    try:
        return str(client.get_model_version(name, str(version)).version)
    except MlflowException:
        raise LoraflowError(f"registered model {name!r} has no version {version}; see `loraflow versions --model {name}`.") from None


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _append_history(client: Any, name: str, event: dict) -> None:
    """Append an event to the registered model's history tag, dropping the oldest events to fit the column."""
    model = client.get_registered_model(name)
    history = json.loads(model.tags.get(HISTORY_TAG, "[]")) + [event]
    while len(json.dumps(history)) > _HISTORY_LIMIT and len(history) > 1:
        history.pop(0)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history, ensure_ascii=False))


def _now() -> str:
    """UTC timestamp in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
