"""GRPO's rewards from a task card: each component on hand-made completions, the config's callable, held-out scoring
and the gate's field rule."""
import json

import pytest
from pydantic import ValidationError

from loraflow.schemas.config import TaskCard, TrainConfig
from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.schemas.results import EvaluationSummary
from loraflow.tasks.evaluation.reward_eval import held_out_rewards, reward_checks, score_rewards
from loraflow.tasks.evaluation.rewards import reward_functions, reward_names

FIELDS = {"category": ["billing", "shipping", "refund"], "product": "text"}
REFERENCE = json.dumps({"category": "shipping", "product": "FitBand"})


def _scores(completions, rejected=None, grpo=None, fields=FIELDS):
    functions, weights = reward_functions(fields, [REFERENCE], grpo or GrpoConfig())
    columns = {"prompts": [[{"role": "user", "content": "t"}]] * len(completions),
               "completions": [[{"role": "assistant", "content": c}] for c in completions],
               "reference": [REFERENCE] * len(completions), "rejected": [rejected] * len(completions)}
    return {name: f(**columns) for name, f in zip(reward_names(functions), functions)}, weights


def test_each_component_scores_what_it_names():
    scores, weights = _scores([
        '{"category": "shipping", "product": "fitband "}',  # right; text field matches after normalisation
        '```json\n{"category": "refund", "product": "FitBand"}\n```',  # fenced: valid, but text outside the object
        'Sure! {"category": "shipping"}',  # prose before the object: not a JSON answer
    ], rejected=json.dumps({"category": "refund", "product": "FitBand"}))
    assert scores["json_valid"] == [1.0, 1.0, 0.0]
    assert scores["field_category"] == [1.0, 0.0, 0.0]
    assert scores["field_product"] == [1.0, 1.0, 0.0]
    assert scores["no_extra_text"] == [1.0, 0.0, 0.0]
    # the rejected answer was wrong only in category: repeating that field costs the whole penalty
    assert scores["rejected"] == [0.0, -1.0, 0.0]
    assert weights == [1.0, 1.0, 1.0, 0.5, 1.0]


def test_rows_without_a_rejected_answer_or_a_reference_field_are_left_out():
    scores, _ = _scores(['{"category": "shipping"}'], fields={"category": FIELDS["category"], "size": "text"})
    assert scores["rejected"] == [None] and scores["field_size"] == [None]


def test_weights_switch_components_off_and_per_field_weights_override():
    grpo = GrpoConfig(weights={"no_extra_text": 0, "rejected": 0}, field_weights={"product": 3.0})
    functions, weights = reward_functions(FIELDS, [REFERENCE], grpo)
    assert dict(zip(reward_names(functions), weights)) == {"json_valid": 1.0, "field_category": 1.0, "field_product": 3.0}


def test_fields_are_inferred_from_the_references_when_the_card_declares_none():
    refs = [json.dumps({"category": c, "note": f"n{i}"}) for i, c in enumerate(["a", "b", "a", "b", "a", "b"] * 2)]
    names = reward_names(reward_functions({}, refs, GrpoConfig())[0])
    assert "field_category" in names and "field_note" in names


def length_penalty(prompts, completions, **kwargs):
    """A custom reward for the config test: shorter is better."""
    return [-len(str(c)) / 100 for c in completions]


def test_a_module_function_reward_is_checked_when_the_config_is_read():
    grpo = GrpoConfig(reward_function="tests.unit.test_rewards:length_penalty")
    assert "length_penalty" in reward_names(reward_functions(FIELDS, [REFERENCE], grpo)[0])
    with pytest.raises(ValidationError, match="cannot be imported"):
        GrpoConfig(reward_function="tests.unit.test_rewards:no_such_function")
    with pytest.raises(ValidationError, match="module:function"):
        GrpoConfig(reward_function="length_penalty")


def test_effective_batch_must_hold_whole_groups():
    with pytest.raises(ValidationError, match="multiple of train.grpo.num_generations"):
        TrainConfig(objective="grpo", effective_batch_size=6, micro_batch_size=2, grpo={"num_generations": 4})
    assert TrainConfig(objective="sft", effective_batch_size=6, micro_batch_size=2, grpo={"num_generations": 4})


def _rows(predictions):
    return [{"id": str(i), "messages": [{"role": "user", "content": "t"}], "reference": REFERENCE, "prediction": p}
            for i, p in enumerate(predictions)]


def test_held_out_rewards_score_each_model_and_go_to_mlflow(tmp_path):
    card = TaskCard(fields=FIELDS)
    write_jsonl(tmp_path / "c.jsonl", _rows(['{"category": "shipping", "product": "FitBand"}'] * 2))
    write_jsonl(tmp_path / "b.jsonl", _rows(['{"category": "refund", "product": "FitBand"}', "no idea"]))
    result = held_out_rewards({"candidate": str(tmp_path / "c.jsonl"), "base": str(tmp_path / "b.jsonl"),
                               "majority": str(tmp_path / "b.jsonl")}, card, GrpoConfig(), str(tmp_path))
    assert set(result.labels) == {"candidate", "base"}
    assert result.labels["candidate"].mean_reward == pytest.approx(3.5)
    assert result.labels["base"].components["field_category"] == 0.0
    assert result.mlflow_metrics["candidate.reward.field_product"] == 1.0
    assert json.loads((tmp_path / "eval" / "rewards.json").read_text())["labels"]["base"]["n"] == 2
    assert score_rewards([], card, GrpoConfig()).mean_reward == 0.0


def test_the_gate_fails_a_field_that_falls_and_shows_the_rewards():
    def model(accuracy, match):
        return {"label": "", "predictions": "", "metrics": {},
                "fields": {"category": {"kind": "categorical", "n": 10, "accuracy": accuracy, "macro_f1": accuracy},
                           "product": {"kind": "text", "n": 10, "exact_match": match, "normalized_match": match}}}

    def rewards(mean, components):
        return {"n": 10, "mean_reward": mean, "components": components, "weights": {}}

    summary = EvaluationSummary.model_validate(
        {"success_metric": {"metric": "json_field_score", "threshold": 0.5},
         "reward": {"labels": {"candidate": rewards(3.0, {"json_valid": 1.0}), "base": rewards(2.0, {})}, "mlflow_metrics": {}},
         "labels": {"candidate": model(0.9, 0.5), "base": model(0.7, 0.6)}})
    checks = reward_checks(summary, "base")
    assert checks[0][1].startswith("skip: held-out GRPO reward") and "candidate 3.000, base 2.000" in checks[0][1]
    assert [ok for ok, _ in checks[1:]] == [True, False]
    assert "field product" in checks[2][1] and checks[2][1].startswith("fail:")
    assert reward_checks(summary.model_copy(update={"reward": None}), "base") == []  # not a GRPO run: no lines
