"""Dataset lineage: numbered versions of train/val/test (+ feedback-eval) with a manifest, grown from feedback.

Layout: `<root>/v<N>/{train,val,test,feedback_eval}.jsonl` + `manifest.json`, root defaulting to
`$LORAFLOW_HOME/lineage/<task name>/`. A version is `prepared` (its data-stage input is written) and then
`committed` (the data stages' output is copied in). The test set of v1 stays the test set of every later version.
"""
import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from loraflow.tasks.data.dedup import content_key
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import iter_jsonl, read_jsonl, write_jsonl

SPLITS = ("train", "val", "test")
EVAL_FILE = "feedback_eval.jsonl"
MANIFEST = "manifest.json"


def lineage_root(task_name: str, root: str | None = None) -> Path:
    """The lineage folder: `root` if given, else $LORAFLOW_HOME/lineage/<task name>."""
    from loraflow.tasks.common.settings import loraflow_home

    return Path(root) if root else loraflow_home() / "lineage" / task_name


def _manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _write_manifest(folder: Path, manifest: dict) -> dict:
    # Written last and renamed into place: a half-written version never looks committed.
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    tmp.replace(folder / MANIFEST)
    return manifest


def list_versions(root: str | Path, status: str | None = "committed") -> list[dict]:
    """Manifests of the versions under root, oldest first (only `status` ones unless status is None)."""
    root = Path(root)
    found = []
    for folder in root.glob("v*") if root.is_dir() else []:
        if folder.is_dir() and folder.name[1:].isdigit():
            manifest = _manifest(folder)
            if manifest and (status is None or manifest.get("status") == status):
                found.append({**manifest, "dir": str(folder)})
    return sorted(found, key=lambda m: m["version"])


def latest_version(root: str | Path) -> dict | None:
    """The newest committed version's manifest (with its `dir`), or None for an empty lineage."""
    versions = list_versions(root)
    return versions[-1] if versions else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _new_version_dir(root: Path) -> tuple[int, Path]:
    """Create the next v<N> folder atomically (mkdir fails if a concurrent run took the number)."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        numbers = [int(p.name[1:]) for p in root.glob("v*") if p.name[1:].isdigit()]
        number = max(numbers, default=0) + 1
        try:
            (root / f"v{number}").mkdir()
            return number, root / f"v{number}"
        except FileExistsError:
            continue


def _originals(path: Path):
    """Records of a split that are not augmentations: augmenting again would stack augmentations on augmentations."""
    return (r for r in iter_jsonl(path) if not r.get("metadata", {}).get("augment_method"))


def _finalize(folder: Path, manifest: dict, data_dir: Path, frozen_test: Path | None) -> dict:
    """Copy train/val (originals only) and the test set in, hash them, and mark the version committed."""
    counts = {}
    for name in ("train", "val"):
        counts[name] = write_jsonl(folder / f"{name}.jsonl", _originals(data_dir / f"{name}.jsonl"))
    test_source = frozen_test or data_dir / "test.jsonl"
    # The frozen test set is copied byte for byte: records the leakage check moved into this run's test split
    # belong to neither train nor the frozen set, so they leave the lineage.
    shutil.copyfile(test_source, folder / "test.jsonl")
    counts["test"] = sum(1 for _ in iter_jsonl(folder / "test.jsonl"))
    if not (folder / EVAL_FILE).is_file():
        write_jsonl(folder / EVAL_FILE, [])
    counts["feedback_eval"] = sum(1 for _ in iter_jsonl(folder / EVAL_FILE))
    files = {name: _sha256(folder / f"{name}.jsonl") for name in SPLITS}
    files["feedback_eval"] = _sha256(folder / EVAL_FILE)
    content = hashlib.sha256("".join(files[name] for name in SPLITS).encode()).hexdigest()
    manifest = {**manifest, "status": "committed", "committed_at": _now(), "counts": counts, "files": files,
                "content_hash": content}
    return _write_manifest(folder, manifest)


def seed_lineage(root: str | Path, data_dir: str | Path, source: dict | None = None) -> dict | None:
    """Commit v1 from a finetune run's `data/` folder when the lineage has no version yet; None if it has one."""
    root = Path(root)
    if latest_version(root) is not None:
        return None
    data_dir = Path(data_dir)
    missing = [name for name in SPLITS if not (data_dir / f"{name}.jsonl").is_file()]
    if missing:
        raise LoraflowError(f"{data_dir} lacks {', '.join(missing)}.jsonl; seed the lineage from a finished run's data/ folder.")
    number, folder = _new_version_dir(root)
    manifest = {"version": number, "parent": None, "status": "prepared", "created_at": _now(), "feedback_batches": [],
                "batch_id": None, "feedback_ids": {}, "superseded": [], "source": {"kind": "finetune", **(source or {})}}
    return {**_finalize(folder, manifest, data_dir, None), "dir": str(folder)}


def split_feedback(records: list[dict], eval_share: float, salt: str = "") -> tuple[list[dict], list[dict]]:
    """Split feedback records into (train, eval) by a hash of their id: stable across reruns and machines."""
    if not 0.0 <= eval_share < 1.0:
        raise LoraflowError(f"feedback_eval_share={eval_share} must be at least 0 and below 1; e.g. 0.2 keeps a fifth of the feedback for evaluation.")
    train, held = [], []
    for record in records:
        point = int(hashlib.sha256(f"{salt}:{record['id']}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held if point < eval_share else train).append(record)
    return train, held


def _prompt_key(messages: list[dict]) -> str:
    from loraflow.tasks.data.normalize import normalize_text

    # Compared after the cleaning stage's normalisation: stored records are normalised, raw feedback is not.
    return content_key([{"role": m["role"], "content": normalize_text(m["content"])} for m in messages[:-1]])


def supersede(existing: list[dict], corrections: list[dict]) -> tuple[list[dict], list[str]]:
    """Drop existing records whose prompt a correction answers anew (the correction is the newer answer)."""
    corrected = {_prompt_key(r["messages"]) for r in corrections}
    kept, dropped = [], []
    for record in existing:
        if _prompt_key(record["messages"]) in corrected:
            dropped.append(record["id"])
        else:
            kept.append(record)
    return kept, dropped


def prepare_version(root: str | Path, feedback_path: str, batch_id: str, eval_share: float,
                    relabel_path: str | None = None) -> dict:
    """Start v<N+1>: parent train/val + the training share of the feedback as the data stages' input; the rest is eval.

    Returns:
        {"version", "dir", "input_path", "frozen_test", "parent", "batch_id", "feedback_ids": {"train", "eval"}}.
    """
    root = Path(root)
    parent = latest_version(root)
    if parent is None:
        raise LoraflowError(f"the dataset lineage {root} is empty; run the finetune pipeline once (loraflow run CONFIG) to seed it before retraining from feedback.")
    if batch_id in parent.get("feedback_batches", []):
        raise LoraflowError(f"feedback batch {batch_id} is already in lineage version v{parent['version']} ({parent['dir']}); post new feedback to start another retrain.")
    feedback = read_jsonl(feedback_path)
    train_share, held = split_feedback(feedback, eval_share, salt=batch_id)
    parent_dir = Path(parent["dir"])
    existing = list(_originals(parent_dir / "train.jsonl")) + list(_originals(parent_dir / "val.jsonl"))
    existing, superseded = supersede(existing, train_share)
    number, folder = _new_version_dir(root)
    # Existing records first: on an exact or near duplicate the cleaning stage keeps the first one it meets.
    write_jsonl(folder / "input.jsonl", existing + train_share)
    parent_eval = read_jsonl(parent_dir / EVAL_FILE) if (parent_dir / EVAL_FILE).is_file() else []
    write_jsonl(folder / EVAL_FILE, parent_eval + held)
    if relabel_path and Path(relabel_path).is_file():
        shutil.copyfile(relabel_path, folder / "relabel_queue.jsonl")
    manifest = {
        "version": number, "parent": parent["version"], "status": "prepared", "created_at": _now(), "batch_id": batch_id,
        "feedback_batches": [*parent.get("feedback_batches", []), batch_id],
        "feedback_ids": {"train": [_feedback_id(r) for r in train_share], "eval": [_feedback_id(r) for r in held]},
        "superseded": superseded, "source": {"kind": "feedback"},
        # preference pairs made from feedback: which feedback ids became which pair (chosen and rejected side)
        "feedback_pairs": {r["id"]: r["metadata"]["pair_feedback_ids"] for r in train_share
                           if "pair_feedback_ids" in r.get("metadata", {})},
    }
    _write_manifest(folder, manifest)
    return {"version": number, "dir": str(folder), "input_path": str(folder / "input.jsonl"),
            "frozen_test": str(parent_dir / "test.jsonl"), "parent": parent["version"], "batch_id": batch_id,
            "feedback_ids": manifest["feedback_ids"]}


def _feedback_id(record: dict) -> str:
    return str(record.get("metadata", {}).get("feedback_id") or record["id"])


def commit_version(prepared: dict, data_dir: str | Path, source: dict | None = None) -> dict:
    """Finish a prepared version from the data stages' output; records which feedback ids reached train/val."""
    folder, data_dir = Path(prepared["dir"]), Path(data_dir)
    manifest = _manifest(folder)
    if manifest is None:
        raise LoraflowError(f"{folder} holds no lineage manifest; prepare the version first (prepare_version).")
    from_feedback = [r for name in ("train", "val") for r in iter_jsonl(data_dir / f"{name}.jsonl")
                     if r.get("metadata", {}).get("source") == "feedback"]
    kept = {_feedback_id(r) for r in from_feedback}
    trained_pairs = {r["id"] for r in from_feedback}
    manifest["feedback_pairs_trained"] = [p for p in manifest.get("feedback_pairs", {}) if p in trained_pairs]
    offered = manifest["feedback_ids"]["train"]
    manifest["feedback_ids"] = {**manifest["feedback_ids"], "trained": [i for i in offered if i in kept],
                                "dropped": [i for i in offered if i not in kept]}
    manifest["source"] = {**manifest["source"], **(source or {})}
    return {**_finalize(folder, manifest, data_dir, Path(prepared["frozen_test"])), "dir": str(folder)}


def annotate_version(version_dir: str | Path, updates: dict) -> dict:
    """Merge keys into a version's manifest `source` (e.g. the registered model version it trained)."""
    folder = Path(version_dir)
    manifest = _manifest(folder)
    if manifest is None:
        raise LoraflowError(f"{folder} holds no lineage manifest; pass a lineage version folder.")
    manifest["source"] = {**manifest.get("source", {}), **updates}
    return {**_write_manifest(folder, manifest), "dir": str(folder)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")



def record_feedback_lineage(tracking_uri: str, run_id: str, registered: dict | None, committed: dict) -> dict:
    """Record which feedback ids went into a model: a JSON artifact and tags on the MLflow run and its registered version.

    Returns {"run_id", "artifact_uri", "model_name", "model_version", "lineage_version"}.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    ids = committed["feedback_ids"]
    document = {"batch_id": committed["batch_id"], "feedback_batches": committed["feedback_batches"],
                "lineage_version": committed["version"], "lineage_dir": committed["dir"], "parent": committed["parent"],
                "content_hash": committed["content_hash"], "feedback_ids": ids, "superseded": committed.get("superseded", []),
                "feedback_pairs": committed.get("feedback_pairs", {}),
                "feedback_pairs_trained": committed.get("feedback_pairs_trained", []), "registered_model": registered}
    client.log_dict(run_id, document, "feedback/feedback_lineage.json")
    artifact_uri = f"runs:/{run_id}/feedback/feedback_lineage.json"
    trained = ids.get("trained", [])
    tags = {"feedback.batch_id": committed["batch_id"], "feedback.trained_count": str(len(trained)),
            "feedback.eval_count": str(len(ids.get("eval", []))), "feedback.lineage": artifact_uri,
            "lineage.version": str(committed["version"]), "lineage.hash": committed["content_hash"],
            # Tag values are capped at 5000 characters; the artifact always holds the full list.
            "feedback.trained_ids": ",".join(trained)[:4900]}
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    model_name = model_version = None
    if registered:
        model_name, model_version = registered["name"], str(registered["version"])
        for key in ("feedback.batch_id", "feedback.trained_count", "feedback.lineage", "lineage.version", "feedback.trained_ids"):
            client.set_model_version_tag(model_name, model_version, key, tags[key])
    annotate_version(committed["dir"], {"mlflow_run_id": run_id, "model_name": model_name, "model_version": model_version})
    return {"run_id": run_id, "artifact_uri": artifact_uri, "model_name": model_name, "model_version": model_version,
            "lineage_version": committed["version"]}
