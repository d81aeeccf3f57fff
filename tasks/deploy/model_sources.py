"""What a model reference names: a registry URI, a run folder (its merged model, else adapter + base), an adapter or a
model folder. Deploy knows both the registry and what a finished run folder holds; evaluation is handed the result."""
import json
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.deploy.registry import resolve_model


def resolve_eval_target(model: str, tracking_uri: str | None = None) -> dict:
    """What to evaluate: a registry URI, a run folder (its merged model, else adapter + base), an adapter or a model folder.

    Returns {"model_path", "adapter_path" (None for a full model), "run_dir" (None unless a run folder)}.
    """
    folder = Path(model)
    if model.startswith("models:/"):
        return {"model_path": resolve_model(model, tracking_uri=tracking_uri), "adapter_path": None, "run_dir": None}
    if not folder.is_dir():
        raise LoraflowError(f"model {model!r} is neither a folder nor a registry URI; pass a run folder, a model folder or models:/NAME@champion.")
    run_dir = folder if RunFolder(folder).run_json.is_file() else None
    if run_dir is not None:
        merged, adapter = RunFolder(folder).merged, RunFolder(folder).adapter
        if (merged / "config.json").is_file():
            return {"model_path": str(merged), "adapter_path": None, "run_dir": str(run_dir)}
        if not (adapter / "adapter_config.json").is_file():
            raise LoraflowError(f"run folder {folder} holds neither model/merged nor model/adapter; pass a finished run's folder.")
        folder = adapter
    if (folder / "adapter_config.json").is_file():
        base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base or not Path(base).exists():
            raise LoraflowError(f"{folder}/adapter_config.json names base model {base!r}, which is not a local folder; evaluate the merged model instead.")
        return {"model_path": base, "adapter_path": str(folder), "run_dir": str(run_dir) if run_dir else None}
    return {"model_path": resolve_model(str(folder)), "adapter_path": None, "run_dir": None}
