"""Long context on CUDA (issue 27, item 3): QLoRA on a small random Llama at a long sequence, one optimizer step with
offloaded checkpointing against plain checkpointing: the same loss, a lower peak, and the estimate's peak beside it."""
import copy

import pytest

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig

pytestmark = pytest.mark.gpu

# 8 layers of 1024, vocabulary 32000: at 32k tokens the layer inputs (8 x 32k x 1024 x 2 B = 0.5 GiB) are a visible
# share of the peak, and one step takes seconds.
SHAPE = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
             vocab_size=32000, max_position_embeddings=65536, tie_word_embeddings=False, use_cache=False)
TOKENS = 32768
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _token_tokenizer():
    """A three-token tokenizer: the data is already token ids; trl needs a pad token from a processing class."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def _step(offload: bool) -> tuple[float, float]:
    """(loss, peak allocated GiB) of one trl step at TOKENS tokens through load_model + build_trainer."""
    import tempfile
    from pathlib import Path

    import datasets
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from loraflow.tasks.training.train import build_trainer, load_model

    config = LlamaConfig(**SHAPE)
    torch.manual_seed(0)
    with torch.device("cuda"):
        state = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).state_dict()
    model = load_model(None, "qlora", "cuda", True, True, config=copy.deepcopy(config), state_dict=state)
    del state
    train = TrainConfig(method="qlora", micro_batch_size=1, effective_batch_size=1, max_steps=1, save_steps=10**6,
                        gradient_checkpointing=True, offload_activations=offload, unchecked_layers=0, compile_layers=False,
                        logging_steps=1, warmup_ratio=0.0)
    ids = torch.randint(3, SHAPE["vocab_size"], (TOKENS,), generator=torch.Generator().manual_seed(1)).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(model, _token_tokenizer(), train, LoraConfig(r=16, alpha=32, target_modules=TARGETS),
                                TOKENS, Path(tmp), True, datasets.Dataset.from_dict({"input_ids": [ids]}))
        assert trainer.pack_plan is None or trainer.pack_plan.row_tokens >= TOKENS
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        result = trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30
    del trainer, model
    torch.cuda.empty_cache()
    return result.metrics["train_loss"], peak


def test_offloaded_checkpointing_trains_a_long_sequence_below_plain_checkpointings_peak():
    from loraflow.tasks.planning.estimate import estimate_resources

    loss_kept, peak_kept = _step(offload=False)
    loss_offloaded, peak_offloaded = _step(offload=True)
    estimated = {offload: estimate_resources({"model_type": "llama", **SHAPE}, "qlora", 16, TOKENS, 1, True, 0, 1.0, 80.0,
                                             target_modules=TARGETS, qlora_fp32="none", offload_activations=offload)
                 .peak_gpu_memory_gib for offload in (False, True)}
    print(f"{TOKENS} tokens: peak {peak_kept:.2f} GiB kept (estimate {estimated[False]:.2f}), {peak_offloaded:.2f} GiB "
          f"offloaded (estimate {estimated[True]:.2f}); loss {loss_kept:.4f} / {loss_offloaded:.4f}")
    assert loss_offloaded == pytest.approx(loss_kept, rel=1e-3)  # the same batch and weights (bf16 kernels)
    saved = (SHAPE["num_hidden_layers"] - 2) * TOKENS * SHAPE["hidden_size"] * 2 / 2**30
    assert peak_offloaded < peak_kept - 0.5 * saved  # at least half of the modelled saving shows
    for offload, measured in ((False, peak_kept), (True, peak_offloaded)):
        assert measured == pytest.approx(estimated[offload], rel=0.25), (offload, measured, estimated[offload])
