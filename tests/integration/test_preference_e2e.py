"""Feedback to preference tuning end to end: corrections posted over HTTP to the feedback API start the
retrain-from-feedback deployment on a Prefect worker, which trains with train.objective=sft_then_dpo (or sft_then_grpo,
the users' answers as GRPO's references and rejected answers) on the tiny model; the gate decides, and the dataset
lineage and MLflow name the pairs each feedback id became."""
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


def _retrain_from_posted_feedback(stack: dict, feedback_api: str, tmp_path: Path, name: str, objective: str,
                                  extra: list[str] = ()) -> dict:
    """Seed the lineage with a first run, point the retrain deployment at `objective`, post the feedback over HTTP and
    wait for the retrain it starts; returns the feedback ids, the lineage version, the run folder and its MLflow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    from loraflow.tasks.data.lineage import latest_version, lineage_root
    from loraflow.tasks.deploy.registry import champion_version

    overrides = [f"task_card.name={name}", "model.name_or_path=tiny-random", "model.max_length=512", "train.max_steps=2",
                 "train.micro_batch_size=4", "train.effective_batch_size=4", f"train.objective={objective}",
                 "eval.max_samples=8", "eval.max_new_tokens=8", "eval.bootstrap_samples=100", "eval.gate_fields=false",
                 "task_card.success_criteria=[{metric: json_field_accuracy, threshold: 0.0}]", *extra]

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

    lineage = latest_version(lineage_root(name))
    assert lineage["version"] == 2 and lineage["batch_id"] == batch_id
    expected = {**{f"pair-{i}": {"chosen": i, "rejected": i} for i in corrections}, f"pair-{up}-{down}": {"chosen": up, "rejected": down}}
    retrain = Path(lineage["source"]["run_dir"])
    trained = [json.loads(line) for split in ("train", "val")
               for line in (retrain / "data" / f"{split}.jsonl").read_text().splitlines()]
    return {"posts": posts, "corrections": corrections, "up": up, "down": down, "expected_pairs": expected,
            "lineage": lineage, "retrain": retrain, "trained": trained, "mlflow_run": lineage["source"]["mlflow_run_id"]}


def _assert_lineage_names_the_pairs(done: dict, tmp_path: Path) -> None:
    """The lineage names the pair each feedback id became: a correction over the model's answer, and the accepted answer
    over the thumbs-down one; the pairs that survived the data stages were trained on, and MLflow holds the same map."""
    from mlflow import MlflowClient

    lineage, expected, trained = done["lineage"], done["expected_pairs"], done["trained"]
    assert lineage["feedback_pairs"] == expected
    assert lineage["feedback_pairs_trained"] and set(lineage["feedback_pairs_trained"]) <= set(expected)
    assert {r["id"] for r in trained if r["id"].startswith("pair-")} == set(lineage["feedback_pairs_trained"])
    assert all("rejected" in r for r in trained)
    lineage_doc = json.loads(Path(MlflowClient().download_artifacts(done["mlflow_run"], "feedback/feedback_lineage.json",
                                                                    str(tmp_path))).read_text())
    assert lineage_doc["feedback_pairs"] == expected


def test_corrections_posted_to_the_api_retrain_with_sft_then_dpo_and_the_lineage_names_the_pairs(stack, feedback_api,
                                                                                                  tmp_path):
    from mlflow import MlflowClient

    from loraflow.tasks.deploy.registry import champion_version

    name = f"e2e-prefs-{uuid.uuid4().hex[:8]}"
    done = _retrain_from_posted_feedback(stack, feedback_api, tmp_path, name, "sft_then_dpo")
    retrain, mlflow_run = done["retrain"], done["mlflow_run"]

    # 4. The lineage names the pairs each feedback id became.
    _assert_lineage_names_the_pairs(done, tmp_path)

    # 5. It trained with sft_then_dpo: a supervised phase, then DPO, each phase its own MLflow series.
    assert (retrain / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    assert any("rewards/margins" in h for h in json.loads((retrain / "train" / "log_history.json").read_text()))
    client = MlflowClient()
    assert client.get_metric_history(mlflow_run, "train/sft_phase/loss") and client.get_metric_history(mlflow_run, "train/reward_margin")

    # 6. The gate decided, held-out preference accuracy among its reasons, and the champion alias followed it.
    promotion = json.loads((retrain / "eval" / "promotion.json").read_text())
    assert any("held-out preference accuracy" in r for r in promotion["reasons"])
    assert client.get_run(mlflow_run).data.tags["promotion.decision"] == ("promote" if promotion["promote"] else "keep")
    assert champion_version(name) == ("2" if promotion["promote"] else "1")


def test_feedback_posted_to_the_api_retrains_with_sft_then_grpo_rewarded_by_the_users_answers(stack, feedback_api,
                                                                                               tmp_path):
    """The same feedback, the retrain deployment set to sft_then_grpo: the corrections (and the accepted answer) are the
    references GRPO's field rewards compare with, the thumbs-down answers score low, and the lineage names the ids."""
    from mlflow import MlflowClient

    from loraflow.schemas.config.grpo import GrpoConfig
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.deploy.registry import champion_version
    from loraflow.tasks.evaluation.metrics import parse_json_object
    from loraflow.tasks.evaluation.rewards import reward_functions, reward_names
    from loraflow.tasks.training.grpo import to_grpo_examples

    name = f"e2e-grpo-{uuid.uuid4().hex[:8]}"
    done = _retrain_from_posted_feedback(stack, feedback_api, tmp_path, name, "sft_then_grpo",
                                         ["train.grpo.num_generations=2", "train.grpo.max_completion_length=12"])
    retrain, mlflow_run = done["retrain"], done["mlflow_run"]

    # 4. The lineage names the pairs each feedback id became.
    _assert_lineage_names_the_pairs(done, tmp_path)

    # 5. Rewards from users: on what GRPO trained on, each correction (or the accepted answer) is the reference and the
    # answer turned down is the rejected one; the task card's rewards score that answer below the reference, its
    # `rejected` component at -1 (it repeats every wrong field), the reference's at 0.
    posted = dict(zip([*done["corrections"], done["up"], done["down"]], done["posts"]))
    examples = {e["id"]: e for e in to_grpo_examples([r for r in done["trained"] if r["id"].startswith("pair-")])}
    assert set(examples) == set(done["lineage"]["feedback_pairs_trained"])
    fields = load_config(Path(EXAMPLE), []).task_card.fields
    functions, weights = reward_functions(fields, [e["reference"] for e in examples.values()], GrpoConfig())
    names = reward_names(functions)
    for pair_id, example in examples.items():
        ids = done["expected_pairs"][pair_id]
        chosen = posted[ids["chosen"]].get("correction") or posted[ids["chosen"]]["output"]
        assert parse_json_object(example["reference"]) == json.loads(chosen), pair_id
        assert parse_json_object(example["rejected"]) == json.loads(posted[ids["rejected"]]["output"]), pair_id

        def score(text: str) -> dict[str, float | None]:
            return {n: f(prompts=[example["prompt"]], completions=[[{"role": "assistant", "content": text}]],
                         reference=[example["reference"]], rejected=[example["rejected"]], id=[pair_id])[0]
                    for n, f in zip(names, functions)}

        good, bad = score(example["reference"]), score(example["rejected"])
        assert bad["rejected"] == -1.0 and good["rejected"] == 0.0, (pair_id, good, bad)
        total = lambda parts: sum(w * (parts[n] or 0.0) for n, w in zip(names, weights))  # noqa: E731
        assert total(bad) < total(good), (pair_id, good, bad)

    # 6. It trained with sft_then_grpo: a supervised phase, then GRPO with the rejected reward in force, each phase its
    # own MLflow series.
    assert (retrain / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    history = json.loads((retrain / "train" / "log_history.json").read_text())
    assert any("rewards/rejected/mean" in h for h in history) and any("rewards/field_category/mean" in h for h in history)
    client = MlflowClient()
    assert client.get_metric_history(mlflow_run, "train/sft_phase/loss")
    assert client.get_metric_history(mlflow_run, "train/reward/rejected") and client.get_metric_history(mlflow_run, "train/kl")

    # 7. The gate decided with the held-out GRPO reward shown and every answer field checked; the alias followed it.
    promotion = json.loads((retrain / "eval" / "promotion.json").read_text())
    assert any(r.startswith("skip: held-out GRPO reward") for r in promotion["reasons"])
    assert client.get_run(mlflow_run).data.tags["promotion.decision"] == ("promote" if promotion["promote"] else "keep")
    assert champion_version(name) == ("2" if promotion["promote"] else "1")
