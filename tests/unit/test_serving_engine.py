"""The built-in backend: batched decoding matches transformers' generate, per-request limits, stops, swap."""
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from loraflow.tasks.common.errors import LoraflowError
from loraflow.services.serving.decoding import find_stop, held_back
from loraflow.services.serving.engine import BatchingEngine
from loraflow.services.serving.loading import find_model_folders, load_bundle
from loraflow.services.serving.requests import Delta, Failed, Finished, GenerationRequest, Started

PROMPTS = [
    [{"role": "user", "content": "hello"}],
    [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "订单 2231 的耳机没有声音，请帮忙处理这个问题。"}],
    [{"role": "user", "content": "The quick brown fox jumps over the lazy dog."}],
]


def build_sharp_model(out_dir, seed: int):
    """A tiny model whose weights are large enough that greedy decoding produces varied tokens, not one repeated one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraflow.tasks.common.base_model import build_tiny_model

    base = build_tiny_model(out_dir / "base", ["hello world", "你好世界", "support ticket JSON"])
    model = AutoModelForCausalLM.from_pretrained(base)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() > 1:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.3)
    target = out_dir / f"sharp-{seed}"
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(build_sharp_model(tmp_path_factory.mktemp("serving"), seed=1), device="cpu", version="1")


@pytest.fixture()
def engine(bundle):
    engine = BatchingEngine(bundle, max_batch_size=3, batch_wait_ms=0, default_max_tokens=16).start()
    yield engine
    engine.stop()


@pytest.fixture()
def batching_engine(bundle):
    # A long window and a batch size equal to the test's concurrency make the batch deterministic.
    engine = BatchingEngine(bundle, max_batch_size=3, batch_wait_ms=30_000, default_max_tokens=16).start()
    yield engine
    engine.stop()


def reference_generate(bundle, messages, max_new_tokens, ignore_eos=False):
    """One-at-a-time transformers generate, the behaviour the batcher must reproduce."""
    tokenizer = bundle.tokenizer
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    out = bundle.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=list(bundle.eos_ids),
                                min_new_tokens=max_new_tokens if ignore_eos else 0)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def complete_together(engine, requests):
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(engine.complete, requests))


def test_batched_greedy_matches_generate_for_prompts_of_different_lengths(batching_engine, bundle):
    engine = batching_engine
    results = complete_together(engine, [GenerationRequest(p, max_tokens=12, temperature=0) for p in PROMPTS])
    assert list(engine.batch_sizes) == [3]
    for messages, result in zip(PROMPTS, results):
        assert result.text == reference_generate(bundle, messages, 12)
        assert len(set(result.text)) > 3  # the sharp model does not just repeat one token
        assert result.model_version == "1"


def test_each_request_keeps_its_own_max_tokens_in_one_batch(batching_engine):
    engine = batching_engine
    budgets = [2, 9, 5]
    results = complete_together(engine, [GenerationRequest(PROMPTS[0], max_tokens=n, temperature=0, ignore_eos=True) for n in budgets])
    assert [r.completion_tokens for r in results] == budgets
    assert {r.finish_reason for r in results} == {"length"}
    assert list(engine.batch_sizes) == [3]


def test_stop_string_cuts_the_answer_and_is_never_streamed(engine):
    full = engine.complete(GenerationRequest(PROMPTS[2], max_tokens=16, temperature=0, ignore_eos=True)).text
    stop = full[6:9]
    events = []
    done = threading.Event()
    engine.submit(GenerationRequest(PROMPTS[2], max_tokens=16, temperature=0, stop=(stop,), ignore_eos=True),
                  lambda e: (events.append(e), isinstance(e, (Finished, Failed)) and done.set()))
    assert done.wait(120)
    streamed = "".join(e.text for e in events if isinstance(e, Delta))
    assert streamed == full[: full.index(stop)]
    assert isinstance(events[0], Started) and events[-1].finish_reason == "stop"


def test_eos_ends_the_answer_unless_ignored(engine, bundle):
    first = engine.complete(GenerationRequest(PROMPTS[0], max_tokens=1, temperature=0, ignore_eos=True))
    first_token = bundle.tokenizer(first.text, add_special_tokens=False)["input_ids"][0]
    engine.swap(dataclasses.replace(bundle, eos_ids=frozenset({first_token})))
    stopped = engine.complete(GenerationRequest(PROMPTS[0], max_tokens=5, temperature=0))
    ignored = engine.complete(GenerationRequest(PROMPTS[0], max_tokens=5, temperature=0, ignore_eos=True))
    assert (stopped.text, stopped.finish_reason, stopped.completion_tokens) == ("", "stop", 0)
    assert (ignored.finish_reason, ignored.completion_tokens) == ("length", 5)


def test_sampling_is_reproducible_with_a_seed_and_top_p_near_zero_is_greedy(engine):
    def run(**kw):
        return engine.complete(GenerationRequest(PROMPTS[1], max_tokens=10, ignore_eos=True, **kw)).text

    greedy = run(temperature=0)
    assert run(temperature=1.0, seed=7) == run(temperature=1.0, seed=7)
    assert run(temperature=1.5, seed=7) != greedy
    assert run(temperature=1.0, top_p=1e-9, seed=3) == greedy


def test_prompt_longer_than_the_context_fails_with_400(engine, bundle):
    engine.swap(dataclasses.replace(bundle, max_context=8))
    with pytest.raises(ValueError, match="context is 8"):
        engine.complete(GenerationRequest(PROMPTS[1], max_tokens=4))


def test_max_tokens_beyond_the_context_fails_with_400_and_the_default_is_capped(engine, bundle):
    engine.swap(dataclasses.replace(bundle, max_context=128))
    prompt_tokens = engine.complete(GenerationRequest(PROMPTS[1], max_tokens=1)).prompt_tokens
    with pytest.raises(ValueError, match=f"max_tokens 1000000000 .* {128 - prompt_tokens} tokens"):
        engine.complete(GenerationRequest(PROMPTS[1], max_tokens=10**9))
    unasked = engine.complete(GenerationRequest(PROMPTS[1], ignore_eos=True))  # the server default (16) still fits
    assert unasked.completion_tokens == min(16, 128 - prompt_tokens)


def test_swap_serves_the_new_model_from_the_next_request(engine, bundle):
    engine.swap(dataclasses.replace(bundle, version="2"))
    assert engine.complete(GenerationRequest(PROMPTS[0], max_tokens=2, temperature=0)).model_version == "2"


def test_cancelled_request_is_dropped_before_its_batch(bundle):
    engine = BatchingEngine(bundle, max_batch_size=2, batch_wait_ms=0)
    events = []
    engine.submit(GenerationRequest(PROMPTS[0], max_tokens=2), events.append).cancel()
    engine.start()
    try:
        assert engine.complete(GenerationRequest(PROMPTS[0], max_tokens=2), timeout=120).completion_tokens <= 2
    finally:
        engine.stop()
    assert events == []


def test_stop_string_helpers():
    assert find_stop("abc</s>def", ("</s>", "de")) == 3
    assert find_stop("abc", ("x",)) is None
    assert held_back("answer: </", ("</s>",)) == 2
    assert held_back("answer", ("</s>",)) == 0


def test_model_folders_are_found_in_the_mlflow_transformers_layout(tmp_path, bundle):
    bundle.model.save_pretrained(tmp_path / "model")
    bundle.tokenizer.save_pretrained(tmp_path / "components" / "tokenizer")
    assert find_model_folders(tmp_path) == (tmp_path / "model", tmp_path / "components" / "tokenizer")
    with pytest.raises(LoraflowError, match="does not exist"):
        find_model_folders(tmp_path / "missing")


def test_request_arriving_mid_batch_joins_it_and_matches_generate(bundle):
    engine = BatchingEngine(bundle, max_batch_size=4, batch_wait_ms=0).start()
    late = GenerationRequest(PROMPTS[1], max_tokens=10, temperature=0)
    late_result = {}
    late_done = threading.Event()

    def on_late(event):
        if isinstance(event, Delta):
            late_result["text"] = late_result.get("text", "") + event.text
        if isinstance(event, (Finished, Failed)):
            late_result["end"] = event
            late_done.set()

    def on_early(event):
        # Submitted while the first request is mid-generation: it must join the running batch.
        if isinstance(event, Delta) and "submitted" not in late_result:
            late_result["submitted"] = True
            engine.submit(late, on_late)

    try:
        early_done = threading.Event()
        early_text = []
        engine.submit(GenerationRequest(PROMPTS[2], max_tokens=30, temperature=0, ignore_eos=True),
                      lambda e: (on_early(e), isinstance(e, Delta) and early_text.append(e.text),
                                 isinstance(e, (Finished, Failed)) and early_done.set()))
        assert early_done.wait(120) and late_done.wait(120)
    finally:
        engine.stop()
    assert list(engine.batch_sizes) == [1] and engine.joined_running == 1
    assert "".join(early_text) == reference_generate(bundle, PROMPTS[2], 30, ignore_eos=True)  # undisturbed by the join
    assert late_result["text"] == reference_generate(bundle, late.messages, 10)
    assert late_result["end"].finish_reason in ("stop", "length")


def test_a_model_with_declared_fields_answers_inside_them_unless_the_request_asks_for_text(bundle):
    """Served answers of a released model parse and use a declared class; response_format text turns it off."""
    import json

    from loraflow.services.serving.app import ChatCompletionRequest
    from loraflow.tasks.evaluation.constrained import answer_schema

    fields = {"category": ["billing", "shipping"], "urgent": ["yes", "no"]}
    declared = dataclasses.replace(bundle, answer_schema=answer_schema(fields))
    engine = BatchingEngine(declared, max_batch_size=3, batch_wait_ms=0, default_max_tokens=64).start()
    try:
        def answer(request: ChatCompletionRequest) -> str:
            return engine.complete(request.to_generation(), timeout=120).text

        def body(**extra) -> ChatCompletionRequest:
            return ChatCompletionRequest(**{"model": "m", "messages": PROMPTS[1], "temperature": 0, "max_tokens": 64, **extra})

        for text in [answer(body()) for _ in range(2)] + [answer(body(temperature=1.0, seed=7))]:
            parsed = json.loads(text)
            assert set(parsed) == set(fields) and all(parsed[k] in v for k, v in fields.items()), text
        free = answer(body(response_format={"type": "text"}))
        with pytest.raises(ValueError):
            json.loads(free)  # the control: unconstrained, the random model writes no JSON
        given = answer(body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": answer_schema({"ok": ["y"]})}}))
        assert json.loads(given) == {"ok": "y"}
    finally:
        engine.stop()
    with pytest.raises(ValueError, match="json_schema.schema"):
        ChatCompletionRequest(model="m", messages=PROMPTS[1], response_format={"type": "json_schema"})
