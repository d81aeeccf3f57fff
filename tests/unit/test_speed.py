"""Speed options: resolution by device, the SFTConfig they map to, packing on the CPU, the DDP launch command."""
import pytest

from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.training.speed import PAD_TO_MULTIPLE, decoder_layers, resolve_speed

pytestmark = pytest.mark.filterwarnings("ignore")


def test_compile_layers_defaults_on_for_cuda_and_off_on_the_cpu():
    assert resolve_speed(TrainConfig(), "cuda").compile_layers is True
    assert resolve_speed(TrainConfig(), "cuda:1").pad_to_multiple_of == PAD_TO_MULTIPLE
    cpu = resolve_speed(TrainConfig(), "cpu")
    assert cpu.compile_layers is False and cpu.pad_to_multiple_of is None and cpu.attn_implementation == "sdpa"
    assert resolve_speed(TrainConfig(compile_layers=True), "cpu").compile_layers is True
    assert resolve_speed(TrainConfig(compile_layers=False), "cuda").compile_layers is False


def test_optimizer_auto_is_fused_adamw_on_cuda_and_8bit_needs_cuda():
    assert resolve_speed(TrainConfig(), "cuda").optimizer == "adamw_torch_fused"
    assert resolve_speed(TrainConfig(method="qlora"), "cuda:0").optimizer == "adamw_torch_fused"
    assert resolve_speed(TrainConfig(), "cpu").optimizer == "adamw_torch"
    assert resolve_speed(TrainConfig(optimizer="paged_adamw_8bit"), "cuda").optimizer == "paged_adamw_8bit"
    with pytest.raises(LoraflowError, match="train.optimizer='paged_adamw_8bit' needs CUDA"):
        resolve_speed(TrainConfig(optimizer="paged_adamw_8bit"), "cpu")


def test_liger_with_explicit_compile_is_refused_and_needs_its_package():
    with pytest.raises(LoraflowError, match="train.liger"):
        resolve_speed(TrainConfig(liger=True, compile_layers=True), "cuda")
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        with pytest.raises(LoraflowError, match="liger-kernel"):
            resolve_speed(TrainConfig(liger=True), "cuda")


def test_sft_config_carries_packing_padding_and_ddp_settings(tmp_path):
    from loraflow.tasks.training.trainer_args import build_sft_config

    train = TrainConfig(micro_batch_size=2, effective_batch_size=16, packing=True)
    speed = resolve_speed(train.model_copy(update={"compile_layers": True}), "cuda")
    args = build_sft_config(train, 128, tmp_path, False, 100, False, speed, world_size=2)
    assert args.packing and args.padding_free is False  # trl turns bfd packing padding-free itself
    assert args.pad_to_multiple_of == PAD_TO_MULTIPLE
    assert args.gradient_accumulation_steps == 4  # 16 = 2 per GPU x 2 GPUs x 4
    assert args.ddp_find_unused_parameters is False and args.ddp_broadcast_buffers is False
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert args.optim == "adamw_torch_fused"
    single = build_sft_config(TrainConfig(), 128, tmp_path, False, 100, False)
    assert not single.packing and single.pad_to_multiple_of is None and single.gradient_accumulation_steps == 4


def test_packed_training_on_the_cpu_runs_padding_free_and_compiles_nothing(tmp_path, tiny_model_path):
    import datasets
    import torch
    from transformers import AutoTokenizer

    from loraflow.schemas.config.lora import LoraConfig
    from loraflow.tasks.training.train import build_trainer, load_model, to_prompt_completion

    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                         {"role": "assistant", "content": "ok " * (1 + i % 5)}]} for i in range(24)]
    train = TrainConfig(micro_batch_size=2, effective_batch_size=8, max_steps=2, packing=True, save_steps=100)
    model = load_model(str(tiny_model_path), "lora", "cpu", False, False)
    trainer = build_trainer(model, AutoTokenizer.from_pretrained(tiny_model_path), train, LoraConfig(r=4, alpha=8), 128,
                            tmp_path, False, datasets.Dataset.from_list(to_prompt_completion(rows)))
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # one padding-free row
    # the rows of a step hold about the effective batch, within the 2 x 128 token budget of a micro-batch
    rows = trainer.pack_plan.micro_batches
    assert trainer.args.gradient_accumulation_steps == rows and trainer.args.per_device_train_batch_size == 1
    assert rows < 4 and batch["input_ids"].shape[1] <= 256
    assert abs(int((batch["position_ids"] == 0).sum()) - 8 / rows) <= 2
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert all(getattr(layer, "_compiled_call_impl", None) is None for layer in decoder_layers(trainer.model))
    assert len(decoder_layers(trainer.model)) == 2


def test_unchecked_layers_keep_the_last_layers_activations_during_training(tmp_path, tiny_model_path):
    import datasets
    from transformers import AutoTokenizer

    from loraflow.schemas.config.lora import LoraConfig
    from loraflow.tasks.training.train import build_trainer, load_model, to_prompt_completion

    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                         {"role": "assistant", "content": "ok"}]} for i in range(8)]
    train = TrainConfig(micro_batch_size=2, effective_batch_size=2, max_steps=1, save_steps=100,
                        gradient_checkpointing=True, unchecked_layers=1)
    assert resolve_speed(train, "cpu").unchecked_layers == 1
    # auto keeps every layer checkpointed on the CPU (no card to size it for) and without the model's config
    auto = train.model_copy(update={"unchecked_layers": "auto"})
    assert resolve_speed(auto, "cpu", {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}, 128).unchecked_layers == 0
    assert resolve_speed(auto, "cuda").unchecked_layers == 0
    assert resolve_speed(train.model_copy(update={"gradient_checkpointing": False}), "cpu").unchecked_layers == 0
    model = load_model(str(tiny_model_path), "lora", "cpu", False, True)
    trainer = build_trainer(model, AutoTokenizer.from_pretrained(tiny_model_path), train, LoraConfig(r=4, alpha=8), 128,
                            tmp_path, False, datasets.Dataset.from_list(to_prompt_completion(rows)))
    trainer.train()
    first, last = decoder_layers(trainer.model)
    assert first.gradient_checkpointing is True and last.gradient_checkpointing is False


def test_qlora_on_the_cpu_keeps_fp32_everywhere(tiny_model_path):
    import torch

    from loraflow.tasks.training.train import load_model

    model = load_model(str(tiny_model_path), "qlora", "cpu", False, True)
    assert model.get_input_embeddings().weight.dtype == torch.float32


def test_launch_runs_one_torchrun_worker_per_gpu(tmp_path):
    from loraflow.tasks.training.launch import gpus_for, torchrun_command

    command = torchrun_command(tmp_path / "spec.json", 4)
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert command[-3:] == ["-m", "loraflow.tasks.training.worker", str(tmp_path / "spec.json")]
    import torch

    if not torch.cuda.is_available():
        assert gpus_for(TrainConfig(num_gpus=4)) == 0
