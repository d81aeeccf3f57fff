"""Test support for the deploy tests: a tiny Llama with a ChatML tokenizer and a non-trivial LoRA adapter."""
from pathlib import Path

TEXTS = [
    "Extract the order number and the product from this support ticket.",
    "My order 4411 for a blue kettle arrived broken, please help.",
    "请从工单中提取订单号和产品名称。订单 2231 的耳机没有声音。",
    '{"order": "4411", "product": "kettle"}',
    "The printer stopped working after the update; ticket 771.",
] * 20
PROMPTS = [
    [{"role": "user", "content": "My order 4411 for a blue kettle arrived broken."}],
    [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "订单 2231 的耳机没有声音。"}],
]


def build_tiny_base(out_dir: Path) -> Path:
    """The project's tiny random Llama (ChatML byte-level BPE tokenizer) trained on this module's texts."""
    from loraflow.tasks.common.base_model import build_tiny_model

    return build_tiny_model(out_dir, TEXTS)


def build_adapter(base_dir: Path, out_dir: Path, seed: int = 1, qlora: bool = False) -> Path:
    """Save a LoRA adapter with random (non-zero) A and B on every linear layer of the base (4-bit NF4 for QLoRA)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    torch.manual_seed(seed)
    extra = {}
    if qlora:
        extra = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"), "device_map": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, **extra)
    # init_lora_weights=False draws B at random too, so the adapter changes the outputs.
    peft_config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, peft_config)
    peft_model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return out_dir
