"""The finetune pipeline on preference pairs under the Prefect test harness (tiny model): sft_then_dpo, the held-out
preference accuracy of base and candidate, and the gate's preference lines."""
import json

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


EXAMPLE = REPO / "examples" / "preferences" / "pipeline.yaml"


def test_finetune_then_retrain_from_feedback_learn_from_pairs(prefect_harness, tmp_path):
    from loraflow.flows.finetune import finetune
    from loraflow.flows.retrain import retrain_from_feedback
    from loraflow.schemas.feedback import FeedbackIn
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.feedback.store import FeedbackStore
    from loraflow.tasks.data.lineage import latest_version, lineage_root

    database = f"sqlite:///{tmp_path / 'feedback.db'}"
    name = f"prefs-{tmp_path.name[-8:]}"
    overrides = [
        "model.name_or_path=tiny-random", "model.max_length=512", "train.max_steps=2", "train.micro_batch_size=4",
        "train.effective_batch_size=4", "eval.max_samples=8", "eval.max_new_tokens=8", "eval.bootstrap_samples=100",
        "eval.gate_fields=false", "task_card.success_criteria=[{metric: json_field_accuracy, threshold: 0.0}]",
        f"task_card.name={name}", f"feedback.database_url={database}"]
    out = tmp_path / "run"
    finetune(config=load_config(EXAMPLE, overrides), out_dir=str(out))

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

    # Feedback: two corrections (each a pair over the model's answer) and a thumbs-down under an accepted answer.
    store = FeedbackStore(database)
    ask = [[{"role": "user", "content": f"Hello, my {p} order #{n} is lost. Not urgent at all. Thanks"}]
           for p, n in (("FitBand", 51234), ("PrintPal", 67890), ("SmartHub", 24680))]
    wrong, right = '{"category": "refund", "priority": "high", "product": "%s"}', '{"category": "shipping", "priority": "low", "product": "%s"}'
    ids = [store.add(FeedbackIn(messages=ask[i], output=wrong % p, rating="down", correction=right % p, model_version=f"{name}/1"))[0]["id"]
           for i, p in enumerate(("FitBand", "PrintPal"))]
    up = store.add(FeedbackIn(messages=ask[2], output=right % "SmartHub", rating="up", model_version=f"{name}/1"))[0]["id"]
    down = store.add(FeedbackIn(messages=ask[2], output=wrong % "SmartHub", rating="down", model_version=f"{name}/1"))[0]["id"]
    store.dispose()

    result = retrain_from_feedback(config_path=str(EXAMPLE), overrides=overrides, out_dir=str(tmp_path / "retrain"),
                                   feedback_eval_share=0.0)

    assert result["trained"] and (tmp_path / "retrain" / "eval" / "preference.json").is_file()
    lineage = latest_version(lineage_root(name))
    assert lineage["version"] == 2
    assert lineage["feedback_pairs"] == {f"pair-{ids[0]}": {"chosen": ids[0], "rejected": ids[0]},
                                         f"pair-{ids[1]}": {"chosen": ids[1], "rejected": ids[1]},
                                         f"pair-{up}-{down}": {"chosen": up, "rejected": down}}
    assert set(lineage["feedback_pairs_trained"]) <= set(lineage["feedback_pairs"])
    retrained = json.loads((tmp_path / "retrain" / "eval" / "promotion.json").read_text())
    assert any("held-out preference accuracy" in r for r in retrained["reasons"])
