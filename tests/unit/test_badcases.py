"""Badcase analysis on hand-made predictions: one test case per probable cause, counts and the relabelling file."""
import pytest
from tests.unit.eval_support import build_model

from loraflow.schemas.config import TaskCard
from loraflow.tasks.evaluation.badcases import CAUSES, analyse_badcases
from loraflow.tasks.evaluation.evaluate import score_rows
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl

CARD = TaskCard(success_criteria=[{"metric": "chrf", "threshold": 0.5}])


def _train(id_, request, answer):
    return {"id": id_, "messages": [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": request},
                                    {"role": "assistant", "content": answer}], "metadata": {"language": "en"}}


TRAIN = [
    _train("tr1", "Reset my password please, my account number is 77", "Click 'Forgot password' on the login page."),
    _train("tr2", "Reset my password please, my account number is 77!", "We cannot reset passwords; call the hotline."),
    _train("tr3", "Cancel my subscription to the premium plan today", "Your subscription is cancelled."),
    _train("tr4", "Where is my parcel for order 1234? It has been two weeks.", "It is in transit and arrives tomorrow."),
    _train("tr5", "Where is my package for order 9876? It has been ten days.", "It was delivered to your neighbour."),
    _train("tr6", "我的快递到哪里了？订单号 4411。", "您的快递正在派送中。"),
]


def _case(id_, request, reference, prediction, new_tokens=8, hit_max=False, prompt_tokens=20, language="en"):
    return {"id": id_, "messages": [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": request}],
            "reference": reference, "prediction": prediction, "metadata": {"language": language},
            "generation": {"prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "stopped_at_eos": not hit_max,
                           "hit_max_new_tokens": hit_max}}


CASES = [
    _case("eos", "Where is my parcel for order 5555? It has been a week.", "It arrives on Monday.",
          "It arrives<|im_end|>\nuser\nthanks"),
    _case("trunc", "Where is my parcel for order 5556? It has been a week.",
          "Your parcel left our warehouse on Friday, was handed to the courier on Saturday and should reach you by Tuesday evening.",
          "Your parcel left our", new_tokens=4, hit_max=True),
    _case("no_stop", "Where is my parcel for order 5557? It has been a week.", "On Monday.",
          "It arrives soon and soon and soon and soon and soon and soon", new_tokens=16, hit_max=True),
    _case("format", "Where is my parcel for order 5558? It has been a week.", '{"order": "5558", "status": "late"}',
          "Sure, order 5558 is late."),
    _case("lang", "我的快递到哪里了？订单号 4412。", "您的快递明天送达。", "Your parcel arrives tomorrow.", language="zh"),
    _case("conflict", "Reset my password please, my account number is 77.", "Click 'Forgot password' on the login page.",
          "Please wait."),
    _case("neardup", "Cancel my subscription to the premium plan today.", "I cannot cancel it here; contact billing.",
          "Your plan is cancelled."),
    _case("long", "Where is my parcel for order 5559? It has been a week." + " More details follow." * 30, "It arrives on Monday.",
          "It was lost.", prompt_tokens=400),
    _case("rare", "Can I pay the invoice with bitcoin or gold bars?", "No, only card or bank transfer.", "Yes, we accept both."),
    _case("wrong", "Where is my parcel for order 5560? It has been a week.", "It arrives on Monday.", "It was returned to sender."),
    _case("perfect", "Where is my parcel for order 5561? It has been a week.", "It arrives on Monday.", "It arrives on Monday."),
]
EXPECTED = {
    "eos": "chat_template_eos", "trunc": "truncation", "no_stop": "chat_template_eos", "format": "format_violation",
    "lang": "wrong_language", "conflict": "label_conflict", "neardup": "near_duplicate_different_answer", "long": "long_input",
    "rare": "few_similar_examples", "wrong": "well_formed_but_wrong",
}


@pytest.fixture
def files(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "predictions.jsonl", score_rows([dict(c) for c in CASES]))
    return tmp_path


def test_each_bad_case_gets_its_probable_cause(files):
    result = analyse_badcases(str(files / "predictions.jsonl"), str(files / "train.jsonl"), CARD, 20, str(files))
    rows = read_jsonl(result.path)
    assert result.path == str(files / "eval" / "badcases.jsonl")
    assert {r["id"]: r["cause"] for r in rows} == EXPECTED  # the perfect answer is no badcase
    assert result.n == 10
    assert result.counts["chat_template_eos"] == 2 and sum(result.counts.values()) == 10
    assert result.category_counts == {"prompt_format": 5, "data": 3, "capability": 2}
    by_id = {r["id"]: r for r in rows}
    assert "tr1" in by_id["conflict"]["detail"] and "tr2" in by_id["conflict"]["detail"]
    assert "near_duplicate_different_answer" in by_id["conflict"]["signals"]
    assert "tr3" in by_id["neardup"]["detail"]
    assert "max_new_tokens" in by_id["trunc"]["detail"]
    for row in rows:
        assert {"id", "messages", "reference", "prediction", "cause", "detail", "category"} <= set(row)
        assert row["messages"][-1]["role"] == "user" and CAUSES[row["cause"]] == row["category"]


def test_worst_first_and_limited_to_n(files):
    result = analyse_badcases(str(files / "predictions.jsonl"), str(files / "train.jsonl"), CARD, 3, str(files))
    rows = read_jsonl(result.path)
    scores = {r["id"]: r["scores"]["chrf"] for r in read_jsonl(files / "predictions.jsonl")}
    assert len(rows) == 3
    assert [r["score"]["chrf"] for r in rows] == sorted(scores[r["id"]] for r in rows)
    assert max(r["score"]["chrf"] for r in rows) <= min(s for i, s in scores.items() if i not in {r["id"] for r in rows})


def test_tokenizer_counts_and_special_tokens(files, tmp_path_factory):
    model_dir = build_model(tmp_path_factory.mktemp("tok"))
    rows = score_rows([_case("t", "Where is my parcel?", "It arrives on Monday.", "Monday<|endoftext|>", prompt_tokens=0)])
    write_jsonl(files / "p2.jsonl", rows)
    result = analyse_badcases(str(files / "p2.jsonl"), str(files / "train.jsonl"), CARD, 5, str(files), tokenizer_path=str(model_dir))
    assert read_jsonl(result.path)[0]["cause"] == "chat_template_eos"
