"""Vectorised MinHash LSH: estimates track true Jaccard, finds edited copies, agrees with datasketch."""
import json
import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

import loraflow.tasks.data.dedup as dedup
from loraflow.tasks.data.dedup import char_shingles, content_key, minhash_signatures, near_duplicates, similar_records, word_shingles
from tests.unit.data_support import EN_EXTRA, ZH_CHARS


def _en(rng, n=40):
    return " ".join(rng.choice(EN_EXTRA) for _ in range(n))


def _zh(rng, n=60):
    return "".join(rng.choice(ZH_CHARS) for _ in range(n))


def _word_set(text, n=3):
    w = text.lower().split()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def test_shingles_stay_inside_their_text():
    hashes, owner = char_shingles(["abcd", "ef", "ghi"], 3)
    assert owner.tolist() == [0, 0, 2]  # "ef" is shorter than one shingle
    words, owner = word_shingles(["One two, three FOUR", "one two three"], 3)
    assert owner.tolist() == [0, 0, 1]
    assert words[0] == words[2]  # case and punctuation do not change a word n-gram


def test_estimates_track_true_jaccard():
    rng = random.Random(1)
    pairs = []
    for k in range(200):
        a = _en(rng).split()
        b = list(a)
        for i in rng.sample(range(len(b)), k % 8):
            b[i] = "zz" + str(i)
        pairs.append((" ".join(a), " ".join(b)))
    texts = [t for p in pairs for t in p]
    sig, has = minhash_signatures(texts, ["en"] * len(texts), 128, 3, 3)
    errors = []
    for k, (a, b) in enumerate(pairs):
        sa, sb = _word_set(a), _word_set(b)
        errors.append((sig[2 * k] == sig[2 * k + 1]).mean() - len(sa & sb) / len(sa | sb))
    assert has.all()
    assert abs(np.mean(errors)) < 0.02 and np.std(errors) < 0.06  # 128 permutations: standard error ~0.04


def test_signatures_do_not_depend_on_batching(monkeypatch):
    rng = random.Random(2)
    texts = [_zh(rng) for _ in range(50)] + [_en(rng) for _ in range(50)]
    langs = ["zh"] * 50 + ["en"] * 50
    whole, _ = minhash_signatures(texts, langs, 64, 3, 3)
    monkeypatch.setattr(dedup, "_BATCH_CHARS", 300)
    monkeypatch.setattr(dedup, "_CHUNK_ROWS", 7)
    pieces, _ = minhash_signatures(texts, langs, 64, 3, 3)
    assert (whole == pieces).all()


def _conversations(texts: list[str]) -> list[list[dict]]:
    return [[{"role": "user", "content": t}] for t in texts]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_near_duplicates_keep_the_earliest_record(lang):
    rng = random.Random(3)
    make = _en if lang == "en" else _zh
    texts = [make(rng) for _ in range(300)]
    edited = []
    for t in texts[:20]:
        edited.append(t + (" again" if lang == "en" else "了"))
    texts = texts + edited
    found = near_duplicates(_conversations(texts), [lang] * len(texts), 0.85, "conversation")
    assert set(found) == set(range(300, 320))
    assert all(found[300 + k][0] == k and found[300 + k][1] >= 0.85 for k in range(20))


def test_records_without_shingles_are_near_duplicates_only_as_typo_level_copies():
    # Too short for a shingle, so MinHash never pairs them; the typo-level rule still sees "Hi!" as "hi" said again.
    assert near_duplicates(_conversations(["hi", "Hi!", "ok"]), ["en"] * 3, 0.85, "conversation") == {1: (0, 1.0)}


def test_agrees_with_plain_datasketch():
    rng = random.Random(4)
    base = [_en(rng, 30) for _ in range(150)]
    texts = base + [" ".join(t.split()[:-1] + ["changed"]) for t in base[:40]]
    ours = set(near_duplicates(_conversations(texts), ["en"] * len(texts), 0.8, "conversation"))
    lsh, theirs = MinHashLSH(threshold=0.8, num_perm=128), set()
    for i, t in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([s.encode() for s in _word_set(t)])
        if lsh.query(m):
            theirs.add(i)
        else:
            lsh.insert(i, m)
    assert len(ours ^ theirs) <= 4 and len(ours & theirs) >= 30


def test_content_key_sees_roles_and_text():
    a = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    assert content_key(a) == content_key([dict(m) for m in a])
    assert content_key(a) != content_key([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y "}])
    assert content_key(a) != content_key([{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}])


SYSTEM = "Extract the ticket as JSON."


def ticket(user: str, intent: str, item: str, order: str, city: str) -> list[dict]:
    answer = json.dumps({"intent": intent, "item": item, "order": order, "city": city}, ensure_ascii=False)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def test_a_shared_system_prompt_and_answer_template_do_not_make_different_requests_near_duplicates():
    different = [ticket("订单200311的音箱什么时候能送到厦门?", "delivery_eta", "音箱", "200311", "厦门"),
                 ticket("订单200588的键盘什么时候能送到厦门?", "delivery_eta", "键盘", "200588", "厦门")]
    same = [ticket("订单200311的音箱什么时候能送到厦门?", "delivery_eta", "音箱", "200311", "厦门"),
            ticket("订单200311的音箱什么时候能送到厦门?谢谢", "delivery_eta", "音箱", "200311", "厦门")]
    langs = ["zh", "zh"]
    # The whole conversations look alike (0.76 in the issue); the request turns share far less.
    _, whole = similar_records(different, langs, 0.0, "conversation")
    _, turns = similar_records(different, langs, 0.0, "turns")
    assert whole[0] > 0.6 and turns[0] < 0.5
    assert near_duplicates(different, langs, 0.6, "turns") == {}
    assert near_duplicates(different, langs, 0.6, "conversation") == {1: (0, whole[0])}
    assert set(near_duplicates(same, langs, 0.6, "turns")) == {1}


def test_turns_match_short_answers_only_when_equal():
    long_request = "please help me reset the password of my account on the website today"
    a = [{"role": "user", "content": long_request}, {"role": "assistant", "content": "ok"}]
    b = [{"role": "user", "content": long_request + " thanks"}, {"role": "assistant", "content": "ok"}]
    c = [{"role": "user", "content": long_request + " thanks"}, {"role": "assistant", "content": "no"}]
    assert set(near_duplicates([a, b], ["en"] * 2, 0.8, "turns")) == {1}
    assert near_duplicates([a, c], ["en"] * 2, 0.8, "turns") == {}
