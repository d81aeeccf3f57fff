"""Test support for the evaluation tests: a tiny model, a LoRA adapter on it, and a small test set."""
from pathlib import Path

from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.common.base_model import build_tiny_model

RECORDS = [
    {"id": "t1", "messages": [{"role": "system", "content": "Answer in JSON."},
                              {"role": "user", "content": "My order 4411 for a blue kettle arrived broken."},
                              {"role": "assistant", "content": '{"order": "4411", "product": "kettle"}'}],
     "metadata": {"language": "en", "category": "damage"}},
    {"id": "t2", "messages": [{"role": "user", "content": "订单 2231 的耳机没有声音。"},
                              {"role": "assistant", "content": '{"order": "2231", "product": "耳机"}'}],
     "metadata": {"language": "zh", "category": "defect"}},
    {"id": "t3", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                              {"role": "user", "content": "The printer stopped working after the update; ticket 771, please look at it soon."},
                              {"role": "assistant", "content": '{"order": "771", "product": "printer"}'}],
     "metadata": {"language": "en", "category": "defect"}},
]
TEXTS = [turn["content"] for record in RECORDS for turn in record["messages"]] * 5


def build_model(root: Path) -> Path:
    """The project's tiny random Llama (ChatML tokenizer) built into root."""
    return build_tiny_model(root / "tiny", TEXTS)


def build_adapter(model_dir: Path, out_dir: Path) -> Path:
    """A LoRA adapter with non-zero B matrices, so it really changes the model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False))
    peft_model.save_pretrained(out_dir)
    return out_dir


def write_records(path: Path, records: list[dict] = RECORDS) -> Path:
    """The test records as JSON Lines."""
    write_jsonl(path, records)
    return path
