"""The fast generation path (static KV cache, fixed batch rows) answers as the eager `generate` does, greedily."""
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


def test_static_cache_path_gives_the_eager_greedy_tokens_and_drops_padding_rows(tiny_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor

    from loraflow.tasks.evaluation.fast_generate import fast_generation_plan, generate_fast

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    prompts = ["Extract the support ticket as JSON.", "我的云盘订单还没到。", "Hello, please help me with my account now."]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    config = GenerationConfig(do_sample=False, max_new_tokens=12, min_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
    assert fast_generation_plan(model, 4, [8, 12], 12) is None  # CPU: the eager path, unless forced
    plan = fast_generation_plan(model, 4, [len(tokenizer(p)["input_ids"]) for p in prompts], 12, force=True)
    assert plan.batch_size == 4 and plan.cache_len % 64 == 0 and plan.compile_mode is None

    class Ban(LogitsProcessor):  # a constraint passes through: the banned token never appears
        def __init__(self, token):
            self.token = token

        def __call__(self, input_ids, scores):
            scores[:, self.token] = -float("inf")
            return scores

    with torch.inference_mode():
        eager = model.generate(**enc, generation_config=config)
        fast = generate_fast(model, enc, config, plan)
        banned_token = int(eager[0, enc["input_ids"].shape[1]])
        constrained = generate_fast(model, enc, config, plan, logits_processor=[Ban(banned_token)])
    assert fast.shape == eager.shape  # the padding row added for the fixed batch shape is gone
    assert torch.equal(fast, eager)
    assert not (constrained[:, enc["input_ids"].shape[1]:] == banned_token).any()
