"""The finetune pipeline on preference pairs under the Prefect test harness (tiny model): sft_then_dpo, the held-out
preference accuracy of base and candidate, and the gate's preference lines."""
import json

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_finetune_flow_trains_sft_then_dpo_on_pairs_and_gates_on_preference_accuracy(prefect_harness, tmp_path):
    from flows.finetune import finetune
    from tasks.configuration import load_config

    config = load_config(REPO / "examples" / "preferences" / "pipeline.yaml", [
        "model.name_or_path=tiny-random", "model.max_length=512", "train.max_steps=2", "train.micro_batch_size=4",
        "train.effective_batch_size=4", "eval.max_samples=8", "eval.max_new_tokens=8", "eval.bootstrap_samples=100",
        "eval.gate_fields=false", "task_card.success_criteria=[{metric: json_field_accuracy, threshold: 0.0}]",
        f"task_card.name=prefs-{tmp_path.name[-8:]}", "deploy.merge=false"])
    out = tmp_path / "run"
    finetune(config=config, out_dir=str(out))

    report = json.loads((out / "data" / "report.json").read_text())
    assert report["kind"] == "preference" and report["conservation"]["holds"]
    assert all("rejected" in json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines())
    assert (out / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    history = json.loads((out / "train" / "log_history.json").read_text())
    assert any("rewards/margins" in h for h in history)
    preference = json.loads((out / "eval" / "preference.json").read_text())
    assert set(preference["summary"]["accuracy"]) == {"candidate", "base"}
    assert "accuracy_vs_reference" in preference["scores"]["candidate"]
    promotion = json.loads((out / "eval" / "promotion.json").read_text())
    assert any("held-out preference accuracy: candidate" in r for r in promotion["reasons"])
