"""GRPO on a tiny model: rewards built from the task card's fields score sampled completions, each component is logged,
the reference is the adapter switched off (fresh adapter) or a frozen copy of the supervised one (sft_then_grpo)."""
import json

import pytest

from loraflow.schemas.config import LoraConfig, TrainConfig
from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.evaluation.rewards import reward_functions, reward_names
from loraflow.tasks.training.train import train_model

FIELDS = {"category": ["billing", "shipping"], "priority": ["low", "high"]}


def _records(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        answer = {"category": "billing" if i % 2 else "shipping", "priority": "high" if i % 3 else "low"}
        wrong = {"category": "shipping" if i % 2 else "billing", "priority": answer["priority"]}
        rows.append({"id": f"r{i}", "metadata": {}, "rejected": json.dumps(wrong),
                     "messages": [{"role": "user", "content": f"ticket {i}: my CloudDrive invoice is wrong"},
                                  {"role": "assistant", "content": json.dumps(answer)}]})
    return rows


@pytest.fixture
def data(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", _records(8))
    write_jsonl(tmp_path / "val.jsonl", _records(12)[8:])
    return tmp_path


def _rewards(path, grpo: GrpoConfig):
    references = [r["messages"][-1]["content"] for r in read_jsonl(path)]
    return reward_functions(FIELDS, references, grpo)


def _config(**settings) -> TrainConfig:
    grpo = GrpoConfig(num_generations=2, max_completion_length=8, beta=0.04)
    return TrainConfig(**{"objective": "grpo", "learning_rate": 1e-3, "max_steps": 3, "effective_batch_size": 4,
                          "micro_batch_size": 4, "logging_steps": 1, "eval_steps": 3, "early_stopping_patience": 0,
                          "grpo": grpo, **settings})


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_grpo_logs_every_reward_component_and_saves_an_adapter(tiny_model_path, data, method):
    config = _config(method=method)
    rewards = _rewards(data / "train.jsonl", config.grpo)
    assert reward_names(rewards[0]) == ["json_valid", "field_category", "field_priority", "no_extra_text", "rejected"]
    out = data / method
    result = train_model(str(tiny_model_path), str(data / "train.jsonl"), str(data / "val.jsonl"), LoraConfig(r=8), config,
                         96, str(out), rewards=rewards)
    assert result.objective == "grpo" and (out / "model" / "adapter" / "adapter_config.json").is_file()
    history = json.loads(open(result.log_history).read())
    train_logs = [h for h in history if "reward" in h]
    assert len(train_logs) == 3
    for name in reward_names(rewards[0]):
        assert any(f"rewards/{name}/mean" in h for h in train_logs), name
    assert all("kl" in h and "completions/clipped_ratio" in h for h in train_logs)
    assert any("eval_reward" in h and "eval_rewards/field_category/mean" in h for h in history)
    assert list((out / "train" / "tensorboard").rglob("events.out.tfevents*"))


def test_sft_then_grpo_keeps_the_supervised_adapter_as_the_reference(tiny_model_path, data):
    config = _config(objective="sft_then_grpo")
    result = train_model(str(tiny_model_path), str(data / "train.jsonl"), None, LoraConfig(r=8), config, 96,
                         str(data / "two"), rewards=_rewards(data / "train.jsonl", config.grpo))
    assert result.objective == "sft_then_grpo"
    assert (data / "two" / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    history = json.loads(open(result.log_history).read())
    assert any("reward" in h for h in history)
    # the KL is measured against the frozen supervised adapter: at the first step the policy is that adapter
    first = next(h for h in history if "kl" in h)
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)


def test_grpo_reference_is_the_base_with_the_adapter_disabled(tiny_model_path, data):
    import datasets
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraflow.tasks.training.grpo import build_grpo_trainer, to_grpo_examples
    from loraflow.tasks.training.lora_setup import peft_lora_config
    from loraflow.tasks.training.speed import resolve_speed

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    config = _config()
    trainer = build_grpo_trainer(model, tokenizer, config, data / "ckpt", False,
                                 datasets.Dataset.from_list(to_grpo_examples(read_jsonl(data / "train.jsonl"))), None,
                                 peft_lora_config(model, LoraConfig(r=8)), [], resolve_speed(config, "cpu"),
                                 _rewards(data / "train.jsonl", config.grpo))
    assert trainer.ref_model is None and isinstance(trainer.model, PeftModel)
    assert "ref" not in trainer.model.peft_config  # a fresh adapter: the reference is the adapter switched off
    assert trainer.args.reward_weights == [1.0, 1.0, 1.0, 0.5, 1.0]


def test_grpo_without_any_reward_component_is_refused(tiny_model_path, data):
    config = _config(grpo=GrpoConfig(num_generations=2, weights={"json_valid": 0, "fields": 0, "no_extra_text": 0,
                                                                 "rejected": 0}))
    with pytest.raises(LoraflowError, match="needs reward functions"):
        train_model(str(tiny_model_path), str(data / "train.jsonl"), None, LoraConfig(r=8), config, 96, str(data / "none"),
                    rewards=_rewards(data / "train.jsonl", config.grpo))


def test_grpo_examples_take_the_answer_a_feedback_correction_replaced_as_the_rejected_one():
    """A correction on supervised data: the correction is the reference, the model's answer it replaced scores low."""
    from loraflow.tasks.training.grpo import to_grpo_examples

    ask = [{"role": "user", "content": "ticket"}]
    right, wrong = '{"category": "billing"}', '{"category": "refund"}'
    records = [
        {"id": "feedback-1", "messages": [*ask, {"role": "assistant", "content": right}],
         "metadata": {"source": "feedback", "feedback_id": "1", "model_output": wrong}},
        {"id": "pair-2", "messages": [*ask, {"role": "assistant", "content": right}], "rejected": wrong,
         "metadata": {"source": "feedback"}},
        # a user's own metadata field of that name is not feedback: no rejected answer
        {"id": "r3", "messages": [*ask, {"role": "assistant", "content": right}], "metadata": {"model_output": wrong}},
    ]
    examples = to_grpo_examples(records)
    assert [(e["prompt"], e["reference"], e["rejected"]) for e in examples] == [
        (ask, right, wrong), (ask, right, wrong), (ask, right, None)]
    functions, _ = reward_functions({"category": ["billing", "refund"]}, [right], GrpoConfig())
    reward = dict(zip(reward_names(functions), functions))["rejected"]
    assert reward(completions=[wrong, right], reference=[right, right], rejected=[wrong, wrong]) == [-1.0, 0.0]


def test_grpo_generation_picks_vllm_only_where_it_can_run_and_says_what_is_missing(monkeypatch):
    import importlib.util

    from loraflow.tasks.training.grpo import generation_arguments

    real_find_spec = importlib.util.find_spec
    for has_vllm in (False, True):
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: (object() if has_vllm else None) if name == "vllm" else real_find_spec(name, *a))
        assert generation_arguments(GrpoConfig(), cuda=False) == {}  # auto on the CPU: transformers' generate
        expected = {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3} if has_vllm else {}
        assert generation_arguments(GrpoConfig(), cuda=True) == expected
        assert generation_arguments(GrpoConfig(generation="generate"), cuda=True) == {}
        assert generation_arguments(GrpoConfig(generation="continuous_batching"), cuda=False) == {
            "use_transformers_continuous_batching": True}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    with pytest.raises(LoraflowError, match=r"generation=vllm needs the vllm package"):
        generation_arguments(GrpoConfig(generation="vllm"), cuda=True)
    with pytest.raises(LoraflowError, match=r"generation=vllm needs CUDA"):
        generation_arguments(GrpoConfig(generation="vllm"), cuda=False)


def test_grpo_samples_through_continuous_batching(tiny_model_path, data):
    """generation=continuous_batching: transformers' paged generate_batch samples the groups; training runs as with
    generate and every reward component is logged."""
    config = _config(grpo=GrpoConfig(num_generations=2, max_completion_length=8, generation="continuous_batching"),
                     max_steps=2)
    rewards = _rewards(data / "train.jsonl", config.grpo)
    result = train_model(str(tiny_model_path), str(data / "train.jsonl"), None, LoraConfig(r=8), config, 96,
                         str(data / "cb"), rewards=rewards)
    history = json.loads(open(result.log_history).read())
    train_logs = [h for h in history if "reward" in h]
    assert len(train_logs) == 2 and all("rewards/json_valid/mean" in h for h in train_logs)
    assert all(h["completions/mean_length"] > 0 for h in train_logs)
