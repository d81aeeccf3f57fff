"""Offline synonyms: WordNet 3.0 for English, Cilin through jieba for Chinese."""
import random

import pytest

from loraflow.tasks.data.synonyms import replace_synonyms, synonyms_of


def test_english_synonyms_come_from_the_most_frequent_sense():
    assert "assist" in synonyms_of("help", "en")
    assert "purchase" in synonyms_of("buy", "en")
    assert synonyms_of("Help", "en") == synonyms_of("help", "en")
    # "resume" shares a synset with "summarize" but mostly means "start again": left out.
    assert "resume" not in synonyms_of("summarize", "en")
    assert synonyms_of("xqzzy", "en") == ()


def test_chinese_synonyms_come_from_cilin_and_are_common_words():
    assert "计算机" in synonyms_of("电脑", "zh")
    assert "立刻" in synonyms_of("马上", "zh")
    assert synonyms_of("处理", "zh") == ()  # verbs are left alone: Cilin's verb groups mix senses
    assert all(len(w) >= 2 for w in synonyms_of("快速", "zh"))
    assert synonyms_of("不存在的词语", "zh") == ()


@pytest.mark.parametrize("language,text", [
    ("en", "Could you help me buy a new phone? The old one needs a repair."),
    ("zh", "请马上帮我换一台新电脑，旧电脑的屏幕出现错误了。"),
])
def test_replacement_changes_words_and_is_seeded(language, text):
    out = replace_synonyms(text, language, random.Random(1), fraction=0.5)
    assert out != text
    assert out == replace_synonyms(text, language, random.Random(1), fraction=0.5)
    outputs = {replace_synonyms(text, language, random.Random(seed), fraction=0.5) for seed in range(8)}
    assert len(outputs) > 1


def test_protected_values_stay_verbatim():
    text = "Customer says the phone and the computer need help."
    for seed in range(10):
        out = replace_synonyms(text, "en", random.Random(seed), fraction=1.0, keep=["phone", "computer"])
        assert "phone" in out and "computer" in out
    zh = "客户说电脑需要帮助。"
    for seed in range(10):
        assert "电脑" in replace_synonyms(zh, "zh", random.Random(seed), fraction=1.0, keep=["电脑"])


def test_names_acronyms_and_function_words_are_left_alone():
    text = "Ask Bill at IBM if the SKU is in the list."
    for seed in range(5):
        out = replace_synonyms(text, "en", random.Random(seed), fraction=1.0)
        assert " Bill at IBM if the SKU is in the " in out
    assert replace_synonyms("it is in there with you and me", "en", random.Random(0)) == "it is in there with you and me"


def test_sentence_case_and_articles_follow_the_replacement():
    outs = {replace_synonyms("Help is on the way.", "en", random.Random(s), fraction=1.0) for s in range(10)}
    assert {o.split()[0] for o in outs} == {"Assist", "Aid"}
    assert replace_synonyms("I have a chance.", "en", random.Random(0), fraction=1.0) == "I have an opportunity."
    assert replace_synonyms("She is an adolescent.", "en", random.Random(0), fraction=1.0) == "She is a teenager."


def test_text_without_candidates_comes_back_unchanged():
    assert replace_synonyms("12345 !!!", "en", random.Random(0)) == "12345 !!!"
    assert replace_synonyms("的了吗", "zh", random.Random(0)) == "的了吗"
