"""The resource estimate for preference objectives: pairs double the sequences, DPO's reference costs a forward, not
a second copy of the weights; sft_then_dpo adds its supervised phase's time and disk."""
import pytest

from loraflow.tasks.planning.estimate import GIB, estimate_resources, memory_breakdown
from loraflow.tasks.planning.estimate_shapes import lora_params, shape_from_config
from tests.unit.test_estimate import LLAMA2_7B


def _estimate(objective: str, method: str = "qlora", batch: int = 4, checkpointing: bool = True, device: str = "cpu"):
    return estimate_resources(LLAMA2_7B, method, 16, 1024, batch, checkpointing, 1_000_000, 1.0, 80.0,
                              device=device, objective=objective)


def test_dpo_doubles_the_sequences_and_keeps_one_copy_of_the_weights():
    sft, dpo = _estimate("sft"), _estimate("dpo")
    assert dpo.memory_gib["weights"] == sft.memory_gib["weights"] and dpo.memory_gib["reference"] == 0.0
    # the activations of 4 pairs are those of 8 supervised sequences
    assert dpo.memory_gib["activations"] == pytest.approx(_estimate("sft", batch=8).memory_gib["activations"], abs=1e-3)
    assert dpo.peak_gpu_memory_gib == pytest.approx(_estimate("sft", batch=8).peak_gpu_memory_gib, abs=1e-3)
    [note] = [n for n in dpo.notes if n.startswith("train.objective dpo")]
    assert "adapter disabled" in note and "no second copy of the weights" in note and "+25% compute" in note


@pytest.mark.parametrize(("checkpointing", "step_flops"), [(True, 8), (False, 6)])
def test_dpo_time_is_two_sequences_plus_a_reference_forward(checkpointing, step_flops):
    sft, dpo = _estimate("sft", checkpointing=checkpointing), _estimate("dpo", checkpointing=checkpointing)
    # per pair: chosen and rejected each train (2x), and each is scored once more by the reference (+2 of 6 or 8 FLOPs)
    assert dpo.train_hours / sft.train_hours == pytest.approx(2 * (step_flops + 2) / step_flops, rel=1e-3)
    orpo = _estimate("orpo", checkpointing=checkpointing)
    assert orpo.train_hours / sft.train_hours == pytest.approx(2.0, rel=1e-3)  # no reference


def test_orpo_has_no_reference_but_builds_the_full_logits():
    orpo, dpo = _estimate("orpo", method="lora"), _estimate("dpo", method="lora")
    assert "reference" not in orpo.memory_gib and orpo.memory_gib["activations"] > dpo.memory_gib["activations"]
    assert any("no reference model" in n for n in orpo.notes)


def test_sft_then_dpo_adds_the_supervised_phase_and_a_frozen_adapter_copy():
    sft, dpo, both = _estimate("sft"), _estimate("dpo"), _estimate("sft_then_dpo")
    assert both.train_hours == pytest.approx(sft.train_hours + dpo.train_hours, abs=2e-4)
    adapter_copy = lora_params(shape_from_config(LLAMA2_7B), 16, "all-linear") * 4 / GIB
    assert both.memory_gib["reference"] == pytest.approx(adapter_copy, abs=1e-3)
    assert both.peak_gpu_memory_gib == pytest.approx(dpo.peak_gpu_memory_gib + adapter_copy, abs=2e-3)
    assert both.disk_parts_gib["sft_phase"] == pytest.approx(dpo.disk_parts_gib["checkpoints"] + dpo.disk_parts_gib["final"],
                                                             abs=2e-3)
    assert both.disk_gib > dpo.disk_gib


def test_full_fine_tuning_dpo_loads_a_second_model_as_reference():
    shape = shape_from_config(LLAMA2_7B)
    full = estimate_resources(LLAMA2_7B, "full", 16, 1024, 1, True, 1_000_000, 1.0, None, objective="dpo")
    assert full.memory_gib["reference"] == pytest.approx(shape.total_params * 2 / GIB, abs=1e-3)
    assert any("second bf16 copy" in n for n in full.notes)


def test_a_dpo_run_that_does_not_fit_gets_a_recommendation_sized_for_pairs():
    estimate = estimate_resources(LLAMA2_7B, "lora", 16, 2048, 16, False, 1_000_000, 1.0, 40.0, device="H100",
                                  objective="dpo")
    assert not estimate.fits and estimate.recommendation is not None
    rec = estimate.recommendation
    shape = shape_from_config(LLAMA2_7B)
    trainable = lora_params(shape, 16, "all-linear")
    parts = memory_breakdown(shape, rec.method, trainable, 2048, 2 * rec.micro_batch, rec.gradient_checkpointing, "adamw")
    assert rec.peak_gpu_memory_gib == pytest.approx(sum(parts.values()), abs=2e-3)  # pairs: twice the micro-batch


def test_estimate_for_config_reads_train_objective():
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.planning.estimate_config import estimate_for_config
    from tests.conftest import REPO

    example = REPO / "examples" / "preferences" / "pipeline.yaml"
    estimates = {objective: estimate_for_config(load_config(example, [f"train.objective={objective}"]), device="cpu")
                 for objective in ("sft", "dpo", "sft_then_dpo")}
    assert estimates["sft"].train_hours < estimates["dpo"].train_hours < estimates["sft_then_dpo"].train_hours
    [note] = [n for n in estimates["sft_then_dpo"].notes if n.startswith("train.objective")]
    assert note.startswith("train.objective sft_then_dpo: the supervised phase") and "copy of the supervised adapter" in note
    assert not any(n.startswith("train.objective") for n in estimates["sft"].notes)


def _grpo(objective="grpo", beta=0.04, batch=16, device="H100", prompts=1000, method="qlora"):
    from loraflow.tasks.planning.estimate_objective import Generation

    return estimate_resources(LLAMA2_7B, method, 16, 1024, 4, True, 1_000_000, 1.0, 80.0, device=device,
                              objective=objective, generation=Generation(4, 128, beta, batch, prompts))


def test_grpo_trains_every_prompt_num_generations_times_and_adds_decoding_time():
    from loraflow.tasks.planning.estimate_objective import Generation, generation_seconds

    sft, grpo = _estimate("sft", device="H100"), _grpo()
    shape = shape_from_config(LLAMA2_7B)
    decoding = generation_seconds(shape, "qlora", Generation(4, 128, 0.04, 16, 1000), "H100", 1_000_000, 1024, 1.0)
    # 4 samples per prompt, each also scored by the reference (+2 of 8 FLOPs with checkpointing), plus the decoding
    assert grpo.train_hours == pytest.approx(sft.train_hours * 4 * 10 / 8 + decoding / 3600, rel=1e-3)
    assert decoding > 0 and _grpo(prompts=2000).train_hours > grpo.train_hours
    [note] = [n for n in grpo.notes if n.startswith("train.objective grpo")]
    assert "sampled 4 times" in note and "adapter disabled" in note and "16 completions of up to 128 tokens" in note
    no_kl = _grpo(beta=0)
    assert "reference" not in no_kl.memory_gib and "no reference" in next(n for n in no_kl.notes if "grpo" in n)


def test_grpo_generation_memory_is_the_kv_cache_of_the_generation_batch():
    from loraflow.tasks.planning.estimate_objective import kv_cache_bytes

    shape = shape_from_config(LLAMA2_7B)
    big = _grpo(batch=512)  # 512 completions of 1024 tokens in one generation batch: the cache outgrows training
    assert big.memory_gib["generation_kv_cache"] == pytest.approx(kv_cache_bytes(shape, 512, 1024) / GIB, abs=1e-3)
    assert "activations" not in big.memory_gib and big.peak_gpu_memory_gib > _grpo().peak_gpu_memory_gib
    small = _grpo(batch=4)
    assert "generation_kv_cache" not in small.memory_gib  # training's activations are the peak


def test_sft_then_grpo_keeps_a_frozen_adapter_copy_as_reference():
    both = _grpo("sft_then_grpo")
    adapter_copy = lora_params(shape_from_config(LLAMA2_7B), 16, "all-linear") * 4 / GIB
    assert both.memory_gib["reference"] == pytest.approx(adapter_copy, abs=1e-3)
    assert both.train_hours > _grpo().train_hours and "sft_phase" in both.disk_parts_gib
