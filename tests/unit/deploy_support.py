"""Test support for the deploy tests: a tiny Llama with a ChatML tokenizer and a non-trivial LoRA adapter."""
from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
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
    """Save a tiny random Llama and a byte-level BPE ChatML tokenizer into out_dir."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(TEXTS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=len(fast), max_position_embeddings=256, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


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
