"""The plain QLoRA stack that loraflow's training path is measured against.

Copied from the plain-stack baseline script the project started from (qlora_baseline.py, memory route; its H100 run
is benchmarks/results/qlora_baseline_h100.json) so that it travels to the GPU machine: random Llama-2-7B-shaped bf16
model built on the GPU, quantized to NF4 through from_pretrained + BitsAndBytesConfig, peft
prepare_model_for_kbit_training (non-reentrant checkpointing) + LoRA r=16 on all seven projections, bf16 autocast, grad
clip 1.0, paged 8-bit AdamW, SDPA, labels = inputs, a hand-written loop.
"""
import copy
import gc
import statistics
import time

import torch

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS, bias="none", task_type="CAUSAL_LM")
LR = 2e-4
GIB = 1024**3


def make_config(tiny: bool):
    """Llama-2-7B dimensions (or a 2-layer stand-in for CPU logic checks)."""
    from transformers import LlamaConfig

    if tiny:
        return LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                           tie_word_embeddings=False, use_cache=False)
    return LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, use_cache=False)


def random_state_dict(cfg, device: str) -> dict:
    """A random bf16 model built directly on the device; returns its state dict (the model itself is dropped)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    state = model.state_dict()
    del model
    return state


def build_baseline(cfg, device: str):
    """NF4 quantization through from_pretrained, prepare_model_for_kbit_training, LoRA: the plain stack's model."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig, LlamaForCausalLM

    state = random_state_dict(cfg, device)
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = LlamaForCausalLM.from_pretrained(None, config=copy.deepcopy(cfg), state_dict=state, quantization_config=bnb,
                                             dtype=torch.bfloat16, device_map={"": 0 if device == "cuda" else "cpu"},
                                             attn_implementation="sdpa")
    del state
    free()
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, LoraConfig(**LORA))


def make_optimizer(params, device: str):
    """Paged 8-bit AdamW on CUDA (HF's paged_adamw_8bit), torch AdamW on the CPU."""
    if device == "cuda":
        import bitsandbytes as bnb

        return bnb.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, optim_bits=8, is_paged=True)
    return torch.optim.AdamW(params, lr=LR, weight_decay=0.0)


def free() -> None:
    """Collect garbage, hand cached blocks back and reset the peak counter."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_baseline(model, batches: list[dict], warm: int, device: str) -> dict:
    """The plain loop over pre-built batches; median step time after `warm` steps, peak memory over all steps.

    A batch is {"input_ids", "labels", optional "attention_mask"}; tokens counted are the non-padding ones.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(trainable, device)
    model.train()
    free()
    times, losses, tokens = [], [], []
    for i, batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            out = model(**batch, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        losses.append(float(out.loss.detach()))
        if i >= warm:
            times.append(time.perf_counter() - t0)
            mask = batch.get("attention_mask")
            tokens.append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
        del out, batch
    peak = torch.cuda.max_memory_allocated() / GIB if device == "cuda" else None
    del opt
    free()
    median = statistics.median(times)
    tokens_per_step = statistics.mean(tokens)
    return {"s_per_step_median": median, "step_times_s": times, "tokens_per_step": tokens_per_step,
            "tokens_per_s": tokens_per_step / median, "peak_alloc_GiB": peak, "losses": losses}
