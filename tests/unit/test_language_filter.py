"""The language filter acts only on confident detections: short real messages in a declared script always pass."""
import json
from pathlib import Path

import pytest

from loraflow.schemas.config import CleanConfig
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.clean import clean_records
from loraflow.tasks.data.quality import detect_language_confidence, language_text

# Real messages that the previous filter removed as wrong_language (quoted in issue 23).
MISREAD_EN = ["Help me unblock my PIN.", "Cancel a transaction", "Help me cancel a transaction.", "Extra charge during transfer"]
MISREAD_ZH = ["。。。。。。褪色很严重", "还可以,因人而异。。。。。。。。。。"]
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "short_messages.jsonl"


def _record(i: int, text: str, answer: dict, metadata: dict | None = None) -> dict:
    return {"id": f"m{i}", "messages": [{"role": "system", "content": "Classify the message as JSON."},
                                        {"role": "user", "content": text},
                                        {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}],
            "metadata": {"source_line": i + 1, **(metadata or {})}}


def _clean(tmp_path, texts: list[str], languages: list[str]) -> dict:
    path = tmp_path / "validated.jsonl"
    write_jsonl(path, [_record(i, t, {"label": "other", "note": "n/a"}) for i, t in enumerate(texts)])
    return clean_records(str(path), CleanConfig(near_dedup=False), languages, str(tmp_path / "run"))


def _short_messages() -> list[dict]:
    return read_jsonl(FIXTURE) if FIXTURE.is_file() else []


@pytest.mark.parametrize("languages", [["en"], ["zh"], ["en", "zh"]])
def test_no_short_message_in_a_declared_language_is_removed_by_language(tmp_path, languages):
    fixture = [r for r in _short_messages() if r["language"] in languages]
    texts = [t for t in MISREAD_EN if "en" in languages] + [t for t in MISREAD_ZH if "zh" in languages]
    texts = list(dict.fromkeys(texts + [r["text"] for r in fixture]))  # the fixture holds the strings too
    assert len(texts) > 40
    result = _clean(tmp_path, texts, languages)
    removed = read_jsonl(result["removed"])
    review = read_jsonl(result["review"])
    assert [r for r in removed if r["reason"] in ("wrong_language", "uncertain_language")] == []
    assert [r for r in review if r["review"]["reason"] == "uncertain_language"] == []
    assert result["counts"]["kept"] == len(texts) and result["counts"]["removed_total"] == 0 and review == []


def test_json_answer_keys_do_not_decide_the_language():
    messages = [{"role": "user", "content": "褪色很严重"}, {"role": "assistant", "content": '{"category": "衣服", "sentiment": "negative"}'}]
    assert language_text(messages) == "褪色很严重"
    assert detect_language_confidence(language_text(messages))[0] == "zh"


def test_a_confident_foreign_text_is_removed_and_an_unsure_one_goes_to_review(tmp_path):
    german = ("Sehr geehrte Damen und Herren, ich habe gestern eine Bestellung aufgegeben und bis heute keine "
              "Bestätigung erhalten. Bitte prüfen Sie den Status meiner Lieferung.")
    short_cyrillic = "Привет"  # too short to judge, and not in a declared script: a person decides
    result = _clean(tmp_path, [german, short_cyrillic, "Where is my parcel?"], ["en"])
    removed = {r["record"]["messages"][1]["content"]: r for r in read_jsonl(result["removed"])}
    review = {r["messages"][1]["content"]: r["review"] for r in read_jsonl(result["review"])}
    assert removed[german]["reason"] == "wrong_language" and "confidence" in removed[german]["detail"]
    assert review[short_cyrillic]["reason"] == "uncertain_language"
    assert result["counts"]["kept"] == 1 and result["counts"]["review"] == 1


def test_the_streamed_clean_writes_the_same_language_reviews(tmp_path):
    from loraflow.tasks.data.engine import LocalEngine  # noqa: PLC0415
    from loraflow.tasks.data.streaming.clean import clean_stream  # noqa: PLC0415

    texts = ["Привет", "Where is my parcel?", "Cancel a transaction", "。。。。。。褪色很严重"]
    path = tmp_path / "validated.jsonl"
    write_jsonl(path, [_record(i, t, {"label": "other"}) for i, t in enumerate(texts)])
    memory = clean_records(str(path), CleanConfig(near_dedup=False), ["en", "zh"], str(tmp_path / "a"))
    streamed = clean_stream(str(path), CleanConfig(near_dedup=False), ["en", "zh"], str(tmp_path / "b"), LocalEngine(), 1 << 20)
    for name in ("records", "removed", "review"):
        assert Path(memory[name]).read_bytes() == Path(streamed[name]).read_bytes(), name
    assert memory["counts"] == streamed["counts"]
