"""Feedback to preference tuning end to end: corrections posted over HTTP to the feedback API start the
retrain-from-feedback deployment on a Prefect worker, which trains with train.objective=sft_then_dpo on the tiny
model; the gate decides, and the dataset lineage and MLflow name the pairs each feedback id became."""
import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.prefect_stack_support import client_settings, wait_flow_run, worker_log
from tests.integration.test_retrain_e2e import TOKEN, _http, _run_and_wait, _wait_triggered, feedback_api, stack  # noqa: F401

pytestmark = pytest.mark.slow

EXAMPLE = str(REPO / "examples" / "preferences" / "pipeline.yaml")
PRODUCTS = ("FitBand", "PrintPal", "CloudDrive", "NoteKeeper", "WaveRouter")
# (ticket, the decoy answer the model gave, the right answer): varied, so the cleaning stage keeps them apart
TICKETS = [
    ("Hello, my FitBand order #51234 has not arrived after two weeks. I do not want a refund, only the parcel. No rush.",
     ("refund", "low"), ("shipping", "low")),
    ("PrintPal crashes whenever I print a photo since yesterday's update. Billing is fine, it is the app itself.",
     ("billing", "medium"), ("technical", "medium")),
    ("I was charged twice for CloudDrive on invoice 88123! It is not a technical problem, fix it before tonight.",
     ("technical", "high"), ("billing", "high")),
    ("My NoteKeeper password reset code never works and I am locked out. This has nothing to do with shipping.",
     ("shipping", "medium"), ("account", "medium")),
    ("Please give me my money back for WaveRouter, order 40417. The invoice was right, this is not a billing error.",
     ("billing", "low"), ("refund", "low")),
]


def _post(ticket: str, fields: tuple[str, str], rating: str, name: str, correction: tuple[str, str] | None = None) -> dict:
    def answer(category_priority: tuple[str, str]) -> str:
        product = next(p for p in PRODUCTS if p in ticket)
        return json.dumps({"category": category_priority[0], "priority": category_priority[1], "product": product})

    return {"messages": [{"role": "user", "content": ticket}], "output": answer(fields), "rating": rating,
            "model_version": f"{name}/1", **({"correction": answer(correction)} if correction else {})}


def test_corrections_posted_to_the_api_retrain_with_sft_then_dpo_and_the_lineage_names_the_pairs(stack, feedback_api,
                                                                                                  tmp_path):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    from loraflow.tasks.data.lineage import latest_version, lineage_root
    from loraflow.tasks.deploy.registry import champion_version

    name = f"e2e-prefs-{uuid.uuid4().hex[:8]}"
    overrides = [f"task_card.name={name}", "model.name_or_path=tiny-random", "model.max_length=512", "train.max_steps=2",
                 "train.micro_batch_size=4", "train.effective_batch_size=4", "train.objective=sft_then_dpo",
                 "eval.max_samples=8", "eval.max_new_tokens=8", "eval.bootstrap_samples=100", "eval.gate_fields=false",
                 "task_card.success_criteria=[{metric: json_field_accuracy, threshold: 0.0}]"]

    # 1. The first run of the preference example (finetune deployment) registers v1 and seeds the lineage (without the
    # base: a first champion must beat it, which a 2-step random model does not).
    seed = {"config_path": EXAMPLE, "overrides": [*overrides, "eval.compare_base=false"], "out_dir": str(tmp_path / "seed")}
    _run_and_wait(stack, "finetune/finetune", seed, 600)
    assert champion_version(name) == "1" and latest_version(lineage_root(name))["version"] == 1

    # 2. The retrain deployment runs this config (set by an operator in the UI); all feedback goes to training.
    with client_settings(stack), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain-from-feedback/retrain-from-feedback")
        client.update_deployment(deployment.id, DeploymentUpdate(parameters={
            "config_path": EXAMPLE, "overrides": overrides, "feedback_eval_share": 0.0}))

    # 3. Over HTTP: four corrections of the decoy answer, then a thumbs-up and a thumbs-down answer to one more ticket;
    # the fifth pending item (the thumbs-down) reaches the threshold and starts the retrain.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    posts = [_post(ticket, wrong, "down", name, correction=right) for ticket, wrong, right in TICKETS[:4]]
    ticket, wrong, right = TICKETS[4]
    posts += [_post(ticket, right, "up", name), _post(ticket, wrong, "down", name)]
    answers = []
    for i, body in enumerate(posts):
        status, answer = _http("POST", f"{feedback_api}/v1/feedback", body, {**auth, "Idempotency-Key": f"{name}-{i}"})
        assert status == 201, answer
        answers.append(answer)
    corrections, up, down = [a["id"] for a in answers[:4]], answers[4]["id"], answers[5]["id"]
    batch_id = answers[-1]["retrain_batch_id"]
    assert batch_id and all(a["retrain_batch_id"] is None for a in answers[:-1])

    batch = _wait_triggered(feedback_api, auth, batch_id)
    run = wait_flow_run(stack, uuid.UUID(batch["flow_run_id"]), 600)
    assert run.state.is_completed(), f"{run.state}\n{worker_log(stack)}"
    assert run.parameters["batch_id"] == batch_id

    # 4. The lineage names the pair each feedback id became: a correction over the model's answer, and the accepted
    # answer over the thumbs-down one; the pairs that survived the data stages were trained on.
    lineage = latest_version(lineage_root(name))
    assert lineage["version"] == 2 and lineage["batch_id"] == batch_id
    expected = {**{f"pair-{i}": {"chosen": i, "rejected": i} for i in corrections}, f"pair-{up}-{down}": {"chosen": up, "rejected": down}}
    assert lineage["feedback_pairs"] == expected
    assert lineage["feedback_pairs_trained"] and set(lineage["feedback_pairs_trained"]) <= set(expected)
    retrain = Path(lineage["source"]["run_dir"])
    trained = [json.loads(line) for split in ("train", "val")
               for line in (retrain / "data" / f"{split}.jsonl").read_text().splitlines()]
    assert {r["id"] for r in trained if r["id"].startswith("pair-")} == set(lineage["feedback_pairs_trained"])
    assert all("rejected" in r for r in trained)

    # 5. It trained with sft_then_dpo: a supervised phase, then DPO, each phase its own MLflow series.
    assert (retrain / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    assert any("rewards/margins" in h for h in json.loads((retrain / "train" / "log_history.json").read_text()))
    mlflow_run = lineage["source"]["mlflow_run_id"]
    client = MlflowClient()
    assert client.get_metric_history(mlflow_run, "train/sft_phase/loss") and client.get_metric_history(mlflow_run, "train/reward_margin")
    lineage_doc = json.loads(Path(client.download_artifacts(mlflow_run, "feedback/feedback_lineage.json", str(tmp_path))).read_text())
    assert lineage_doc["feedback_pairs"] == expected

    # 6. The gate decided, held-out preference accuracy among its reasons, and the champion alias followed it.
    promotion = json.loads((retrain / "eval" / "promotion.json").read_text())
    assert any("held-out preference accuracy" in r for r in promotion["reasons"])
    assert client.get_run(mlflow_run).data.tags["promotion.decision"] == ("promote" if promotion["promote"] else "keep")
    assert champion_version(name) == ("2" if promotion["promote"] else "1")
