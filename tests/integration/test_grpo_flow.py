"""GRPO through the whole pipeline under the Prefect test harness (tiny model): rewards built from the task card, each
component in MLflow, held-out rewards beside the field metrics and the gate's GRPO lines; then feedback retrains with
sft_then_grpo and the lineage names the feedback ids it used."""
import json

import pytest

from tests.conftest import REPO
from tests.integration.test_preference_e2e import PRODUCTS, TICKETS

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "preferences" / "pipeline.yaml"
FIELDS = ("category", "priority", "product")


def test_grpo_from_the_task_card_then_sft_then_grpo_from_feedback(prefect_harness, tmp_path):
    from mlflow import MlflowClient

    from loraflow.flows.finetune import finetune
    from loraflow.flows.retrain import retrain_from_feedback
    from loraflow.schemas.feedback import FeedbackIn
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.data.lineage import latest_version, lineage_root
    from loraflow.tasks.feedback.store import FeedbackStore

    database = f"sqlite:///{tmp_path / 'feedback.db'}"
    name = f"grpo-{tmp_path.name[-8:]}"
    overrides = [
        "model.name_or_path=tiny-random", "model.max_length=512", "train.max_steps=2", "train.eval_steps=2",
        "train.micro_batch_size=4",
        "train.effective_batch_size=4", "train.grpo.num_generations=2", "train.grpo.max_completion_length=12",
        "eval.max_samples=8", "eval.max_new_tokens=8", "eval.bootstrap_samples=100", "eval.gate_fields=false",
        "task_card.success_criteria=[{metric: json_field_accuracy, threshold: 0.0}]", f"task_card.name={name}",
        f"feedback.database_url={database}"]
    out = tmp_path / "run"
    result = finetune(config=load_config(EXAMPLE, [*overrides, "train.objective=grpo"]), out_dir=str(out))

    # Rewards came from the task card's fields, each logged on its own (trl's log history and MLflow).
    history = json.loads((out / "train" / "log_history.json").read_text())
    assert any("reward" in h for h in history)
    components = ["json_valid", *(f"field_{f}" for f in FIELDS), "no_extra_text", "rejected"]
    client = MlflowClient()
    run_id = result["mlflow_run_id"]
    for component in components:
        assert any(f"rewards/{component}/mean" in h for h in history), component
        assert client.get_metric_history(run_id, f"train/reward/{component}"), component
    assert client.get_metric_history(run_id, "train/reward") and client.get_metric_history(run_id, "train/kl")

    # Held-out rewards of base and candidate beside the field metrics; the gate says so and checks every field.
    rewards = json.loads((out / "eval" / "rewards.json").read_text())
    assert set(rewards["labels"]) == {"candidate", "base"}
    assert set(rewards["labels"]["candidate"]["components"]) >= {"json_valid", "field_category", "no_extra_text"}
    metrics = client.get_run(run_id).data.metrics
    assert "eval/candidate/reward" in metrics and "eval/base/reward/field_priority" in metrics
    reasons = json.loads((out / "eval" / "promotion.json").read_text())["reasons"]
    assert any(r.startswith("skip: held-out GRPO reward") for r in reasons)
    assert {f for f in FIELDS if any(f"GRPO does not lower field {f}:" in r for r in reasons)} == set(FIELDS)

    # Feedback: two corrections, and a thumbs-down answer under an accepted one: sft_then_grpo learns from the pairs,
    # the correction (or accepted answer) as the reference, the thumbs-down answer scoring low. Varied tickets, so the
    # cleaning stage keeps them apart.
    store = FeedbackStore(database)

    def add(i: int, answer: tuple[str, str], rating: str, correction: tuple[str, str] | None = None) -> str:
        ticket = TICKETS[i][0]
        product = next(p for p in PRODUCTS if p in ticket)
        text = lambda fields: json.dumps({"category": fields[0], "priority": fields[1], "product": product})  # noqa: E731
        item = FeedbackIn(messages=[{"role": "user", "content": ticket}], output=text(answer), rating=rating,
                          correction=text(correction) if correction else None, model_version=f"{name}/1")
        return store.add(item)[0]["id"]

    ids = [add(i, TICKETS[i][1], "down", TICKETS[i][2]) for i in (0, 1)]
    up, down = add(4, TICKETS[4][2], "up"), add(4, TICKETS[4][1], "down")
    store.dispose()

    retrained = retrain_from_feedback(config_path=str(EXAMPLE), overrides=[*overrides, "train.objective=sft_then_grpo"],
                                      out_dir=str(tmp_path / "retrain"), feedback_eval_share=0.0)
    assert retrained["trained"]
    retrain = tmp_path / "retrain"
    assert (retrain / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    assert any("rewards/rejected/mean" in h for h in json.loads((retrain / "train" / "log_history.json").read_text()))
    lineage = latest_version(lineage_root(name))
    assert lineage["version"] == 2
    assert lineage["feedback_pairs"] == {f"pair-{ids[0]}": {"chosen": ids[0], "rejected": ids[0]},
                                         f"pair-{ids[1]}": {"chosen": ids[1], "rejected": ids[1]},
                                         f"pair-{up}-{down}": {"chosen": up, "rejected": down}}
    assert lineage["feedback_pairs_trained"] and set(lineage["feedback_pairs_trained"]) <= set(lineage["feedback_pairs"])
    trained = [json.loads(line) for line in (retrain / "data" / "train.jsonl").read_text().splitlines()]
    assert {r["id"] for r in trained if r["id"].startswith("pair-")} <= set(lineage["feedback_pairs_trained"])
    assert any(r.startswith("skip: held-out GRPO reward")
               for r in json.loads((retrain / "eval" / "promotion.json").read_text())["reasons"])
    retrain_run = lineage["source"]["mlflow_run_id"]
    assert client.get_metric_history(retrain_run, "train/sft_phase/loss")
    assert client.get_metric_history(retrain_run, "train/reward/rejected")
