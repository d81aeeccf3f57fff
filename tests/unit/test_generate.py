"""Generation for evaluation on a tiny real model: prompts, batching, adapters, EOS and length limits."""
import pytest
from tests.unit.eval_support import RECORDS, build_adapter, build_model, write_records

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.generate import generate_for_records, generate_predictions, load_model, split_record


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    model_dir = build_model(root)
    return {"model": model_dir, "adapter": build_adapter(model_dir, root / "adapter"), "test": write_records(root / "test.jsonl")}


def test_rows_hold_prompt_turns_reference_and_bounded_prediction(tiny):
    rows = generate_predictions(str(tiny["model"]), None, str(tiny["test"]), max_new_tokens=6, batch_size=2, max_samples=None)
    assert [r["id"] for r in rows] == ["t1", "t2", "t3"]  # input order kept although batches are length-sorted
    assert rows[2]["messages"] == RECORDS[2]["messages"][:-1]  # earlier assistant turns stay in the prompt
    assert rows[1]["reference"] == '{"order": "2231", "product": "耳机"}'
    assert rows[1]["metadata"] == {"language": "zh", "category": "defect"}
    for row in rows:
        gen = row["generation"]
        assert isinstance(row["prediction"], str)
        assert 0 <= gen["new_tokens"] <= 6
        assert gen["prompt_tokens"] > 5
        assert gen["hit_max_new_tokens"] == (not gen["stopped_at_eos"] and gen["new_tokens"] == 6)
        assert "<|im_start|>" not in row["prediction"]  # the prompt is stripped, special tokens dropped


def test_batched_and_one_at_a_time_give_the_same_greedy_answers(tiny):
    model, tokenizer = load_model(str(tiny["model"]))
    records = RECORDS * 2
    batched = generate_for_records(model, tokenizer, records, max_new_tokens=8, batch_size=6)
    single = generate_for_records(model, tokenizer, records, max_new_tokens=8, batch_size=1)
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]


def test_adapter_changes_the_answers_and_max_samples_limits(tiny):
    base = generate_predictions(str(tiny["model"]), None, str(tiny["test"]), 8, 4, max_samples=2)
    tuned = generate_predictions(str(tiny["model"]), str(tiny["adapter"]), str(tiny["test"]), 8, 4, max_samples=2)
    assert len(base) == len(tuned) == 2
    assert [r["prediction"] for r in base] != [r["prediction"] for r in tuned]


def test_generation_stops_at_eos(tiny):
    import torch

    model, tokenizer = load_model(str(tiny["model"]))
    # Zeroed final norm makes every logit equal, so greedy picks token 0: declare it an end token too.
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.generation_config.eos_token_id = [0, tokenizer.eos_token_id]
    rows = generate_for_records(model, tokenizer, RECORDS, max_new_tokens=5, batch_size=3)
    assert all(r["prediction"] == "" and r["generation"]["stopped_at_eos"] for r in rows)
    assert not any(r["generation"]["hit_max_new_tokens"] for r in rows)


def test_bad_inputs_give_one_line_errors(tiny, tmp_path):
    with pytest.raises(LoraflowError, match="assistant"):
        split_record({"id": "x", "messages": [{"role": "user", "content": "hi"}]}, "test.jsonl:3")
    with pytest.raises(LoraflowError, match="does not exist"):
        generate_predictions(str(tiny["model"]), None, str(tmp_path / "missing.jsonl"), 4, 2, None)
    with pytest.raises(LoraflowError, match="adapter_config.json"):
        generate_predictions(str(tiny["model"]), str(tmp_path), str(tiny["test"]), 4, 2, None)


def test_constrained_answers_always_parse_with_declared_fields_and_classes(tiny):
    """A random tiny model answers anything unconstrained; under the task card's schema every answer is valid JSON
    with exactly the declared fields, each a declared class."""
    import json

    from loraflow.tasks.evaluation.constrained import answer_schema

    fields = {"category": ["damage", "defect"], "urgent": ["yes", "no"]}
    model, tokenizer = load_model(str(tiny["model"]))
    free = generate_for_records(model, tokenizer, RECORDS * 2, max_new_tokens=24, batch_size=3)
    bound = generate_for_records(model, tokenizer, RECORDS * 2, max_new_tokens=64, batch_size=3, schema=answer_schema(fields))

    def declared(text: str) -> bool:
        try:
            answer = json.loads(text)
        except ValueError:
            return False
        return isinstance(answer, dict) and set(answer) == set(fields) and all(answer[k] in v for k, v in fields.items())

    assert not any(declared(r["prediction"]) for r in free)  # the control: unconstrained, the random model never does
    assert all(declared(r["prediction"]) for r in bound), [r["prediction"] for r in bound]
    assert all(r["generation"]["stopped_at_eos"] for r in bound)  # nothing after the object but EOS
