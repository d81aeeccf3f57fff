"""The JSON-schema mask of constrained decoding, walked token by token on a byte-level BPE tokenizer: every declared
answer passes whole, in any script, and nothing outside the schema does."""
import json

import pytest
import torch
from tests.unit.eval_support import build_model

from loraflow.tasks.evaluation.constrained import allowed_tokens_fn, answer_schema

FIELDS = {"category": ["billing", "refund"], "product": "text"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(build_model(tmp_path_factory.mktemp("constrained")))


def _walk(tokenizer, answer: str) -> list[str]:
    """The tokens of `answer` the mask refuses, in order (then whether EOS is allowed after it)."""
    allowed = allowed_tokens_fn(tokenizer, answer_schema(FIELDS), [tokenizer.eos_token_id])
    sequence = tokenizer.encode("prompt", add_special_tokens=False)
    refused = []
    for token in tokenizer.encode(answer, add_special_tokens=False):
        if token not in allowed(0, torch.tensor(sequence)):
            refused.append(tokenizer.decode([token]))
        sequence.append(token)
    if tokenizer.eos_token_id not in allowed(0, torch.tensor(sequence)):
        refused.append("<eos>")
    return refused


@pytest.mark.parametrize("product", ["PhotoSync", "相册同步", "云盘 Pro", "Café crème", "ножницы", "スマホ"])
def test_a_declared_answer_passes_whole_in_any_script(tokenizer, product):
    """A Chinese product name once stopped after its first character: the parser's alphabet was printable ASCII."""
    answer = json.dumps({"category": "billing", "product": product}, ensure_ascii=False)
    assert _walk(tokenizer, answer) == []


@pytest.mark.parametrize("answer", ['{"category": "other", "product": "x"}', '{"category": "billing"}',
                                    '{"category": "billing", "product": "x", "extra": "y"}',
                                    '{\n  "category": "billing", "product": "x"}'])
def test_an_answer_outside_the_schema_is_refused(tokenizer, answer):
    """An undeclared class, a missing or extra field, and indentation (one whitespace at a time: compact JSON)."""
    assert _walk(tokenizer, answer) != []
