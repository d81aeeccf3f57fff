"""What logging the merged model as an MLflow logged model costs, against the run-artifact copy it replaced.

Both register the same merged folder on a fresh SQLite store: `before` is the previous path (mlflow.transformers.save_model
into a temporary folder, then the run's artifacts), `after` is register_model today (the same save_model into the logged
model's artifacts, the model card beside the run's reports, the run/model/version links). Reports wall seconds and the
bytes each leaves in the artifact store.

    python benchmarks/logged_model_cost.py MERGED_DIR [--repeats 2] [--out benchmarks/results/x.json]
"""
import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def _store(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("cost", artifact_location=str(root / "artifacts"))
    return uri, client, client.create_run(experiment).info.run_id


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def before(merged: str, root: Path) -> dict:
    """The previous path: save_model to a temporary folder, log it as run artifacts, register the run artifact."""
    import mlflow.transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraflow.tasks.deploy.registry import pip_requirements

    uri, client, run_id = _store(root)
    start = time.perf_counter()
    components = {"model": AutoModelForCausalLM.from_pretrained(merged, dtype="auto"), "tokenizer": AutoTokenizer.from_pretrained(merged)}
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.transformers.save_model(components, f"{tmp}/model", task="llm/v1/chat", pip_requirements=pip_requirements())
        client.log_artifacts(run_id, f"{tmp}/model", "merged_model")
    client.create_registered_model("cost")
    client.create_model_version("cost", f"{client.get_run(run_id).info.artifact_uri}/merged_model", run_id=run_id)
    return {"seconds": time.perf_counter() - start, "artifact_bytes": _bytes(root / "artifacts")}


def after(merged: str, root: Path) -> dict:
    """register_model as it is now: an MLflow logged model of the run, linked to the registered version."""
    from loraflow.tasks.deploy.registry import register_model

    uri, client, run_id = _store(root)
    start = time.perf_counter()
    register_model(merged, run_id, "cost", {}, tracking_uri=uri)
    return {"seconds": time.perf_counter() - start, "artifact_bytes": _bytes(root / "artifacts")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("merged")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        for name, measure in (("before", before), ("after", after)):  # alternated, so machine load hits both alike
            with tempfile.TemporaryDirectory() as tmp:
                rows.append({"path": name, "repeat": repeat, **measure(args.merged, Path(tmp))})
                print(json.dumps(rows[-1]))
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
              "merged_dir": args.merged, "merged_bytes": _bytes(Path(args.merged)), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
