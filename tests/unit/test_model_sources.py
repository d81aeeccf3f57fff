"""What a model reference names: run folders, adapters and model folders (registry URIs: test_registry.py)."""
import json

import pytest

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.deploy.model_sources import resolve_eval_target


def test_resolve_eval_target_reads_run_folders_adapters_and_model_folders(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    run = tmp_path / "run"
    (run / "model" / "adapter").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "model" / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert resolve_eval_target(str(run)) == {"model_path": str(base), "adapter_path": str(run / "model" / "adapter"), "run_dir": str(run)}
    (run / "model" / "merged").mkdir()
    (run / "model" / "merged" / "config.json").write_text("{}")
    assert resolve_eval_target(str(run))["model_path"] == str(run / "model" / "merged")
    assert resolve_eval_target(str(base)) == {"model_path": str(base), "adapter_path": None, "run_dir": None}
    with pytest.raises(LoraflowError, match="neither a folder nor a registry URI"):
        resolve_eval_target(str(tmp_path / "missing"))
