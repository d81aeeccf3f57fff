"""The data report: merged quarantine/review, conservation proof, histograms, HTML, markdown, metrics."""
import json
import random

import pytest

from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.config.split import SplitConfig
from loraflow.schemas.results import DataStageResult
from loraflow.tasks.data import stages
from loraflow.tasks.data.report import conservation, write_data_report
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl
from tests.unit.data_support import chat, chinese_record, english_record, write_records


def _pipeline(tmp_path, pilot=None):
    rng = random.Random(0)
    rows = [english_record(rng, i) for i in range(60)] + [chinese_record(rng, i) for i in range(60)]
    rows += rows[:5]  # exact duplicates
    rows += ["{broken", {"text": "unknown"}, chat("q", "  "),  # parse error, unknown format, empty answer
             {"instruction": rows[10]["instruction"], "output": "A different answer for the same question."}]
    path = write_records(tmp_path / "in.jsonl", rows)
    out = str(tmp_path / "run")
    ingest = stages.ingest(str(path), DataConfig(), out)
    valid = stages.validate(ingest, DataConfig(max_invalid_share=0.5, pilot=pilot), ["en", "zh"], None, 4096, out)
    clean = stages.clean(valid, CleanConfig(), ["en", "zh"], out)
    split = stages.split(clean, SplitConfig(), out)
    return out, [ingest, valid, clean, split]


def test_report_files_counts_and_conservation(tmp_path):
    out, results = _pipeline(tmp_path)
    results.append(DataStageResult(stage="augment", records="", counts={"augmented": 0}))
    result = write_data_report(out, results, None)
    report = json.loads(open(result.report_json, encoding="utf-8").read())
    assert report["input"] == 129 and report["quarantined"] == 3
    assert report["removed"] == {"exact_duplicate": 5} and report["review"] == 2
    assert report["input"] == report["kept"] + report["quarantined"] + report["removed_total"] + report["review"]
    assert report["conservation"]["holds"] and report["augmented"] == 0
    assert report["train"] + report["val"] + report["test"] == report["kept"]
    assert report["quarantined_by_reason"] == {"parse_json": 1, "unknown_format": 1, "no_empty_content": 1}
    assert report["splits"]["train"]["languages"].keys() == {"en", "zh"}
    assert report["splits"]["train"]["token_lengths"]["counts"] and 0 < report["splits"]["train"]["distinct_2"] <= 1
    assert report["duplicate_clusters"]["count"] == 5 and report["conflicts"]["groups"] == 1
    quarantine = read_jsonl(result.quarantine)
    assert {q["stage"] for q in quarantine} == {"ingest", "validate"}
    assert all(q["line"] and q["reasons"] and {"check", "field", "value"} <= q["reasons"][0].keys() for q in quarantine)
    assert len(read_jsonl(result.review)) == 2
    page = open(result.report_html, encoding="utf-8").read()
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    assert "| removed: exact_duplicate | 5 |" in result.markdown
    assert result.metrics["data.removed.exact_duplicate"] == 5.0 and result.metrics["data.input"] == 129.0
    assert all(isinstance(v, float) for v in result.metrics.values())


def test_pilot_mode_conserves_with_skipped_records(tmp_path):
    out, results = _pipeline(tmp_path, pilot=40)
    report = json.loads(open(write_data_report(out, results, None).report_json, encoding="utf-8").read())
    assert report["pilot_skipped"] == 127 - 40  # 129 lines, 2 quarantined at ingest
    assert report["input"] == report["kept"] + report["quarantined"] + report["removed_total"] + report["review"] + report["pilot_skipped"]


def test_a_broken_count_is_reported_as_a_bug(tmp_path):
    out, results = _pipeline(tmp_path)
    counts = {r.stage: r.counts for r in results}
    counts["clean"] = {**counts["clean"], "removed_total": counts["clean"]["removed_total"] - 1}
    with pytest.raises(RuntimeError, match="conservation violated"):
        conservation(counts)


def test_token_histograms_use_the_tokenizer_when_given(tmp_path, tiny_model_path):
    out, results = _pipeline(tmp_path)
    report = json.loads(open(write_data_report(out, results, str(tiny_model_path)).report_json, encoding="utf-8").read())
    assert report["token_length_method"] == "tokenizer" and report["splits"]["test"]["token_lengths"]["max"] > 10


def test_degenerate_inputs_still_conserve(tmp_path):
    rows = [chat("How do I reset my password?", "Open settings and press reset, then follow the emailed link.")] * 5
    path = write_records(tmp_path / "in.jsonl", rows)
    out = str(tmp_path / "run")
    ingest = stages.ingest(str(path), DataConfig(), out)
    valid = stages.validate(ingest, DataConfig(), ["en"], None, 4096, out)
    clean = stages.clean(valid, CleanConfig(), ["en"], out)
    split = stages.split(clean, SplitConfig(), out)
    report = json.loads(open(write_data_report(out, [ingest, valid, clean, split], None).report_json, encoding="utf-8").read())
    assert report["kept"] == 1 and report["removed"] == {"exact_duplicate": 4} and report["train"] + report["test"] == 1
    assert report["duplicate_clusters"]["largest"] == 5


def test_all_invalid_input_stops_with_exit_code_2(tmp_path):
    path = write_records(tmp_path / "in.jsonl", ["{bad", {"messages": [{"role": "user", "content": "only a question"}]}])
    out = str(tmp_path / "run")
    ingest = stages.ingest(str(path), DataConfig(), out)
    with pytest.raises(LoraflowError) as err:
        stages.validate(ingest, DataConfig(), ["en"], None, 4096, out)
    assert err.value.exit_code == 2 and "100.0%" in str(err.value)
    report = json.loads(open(write_data_report(out, [ingest, err.value.result], None).report_json, encoding="utf-8").read())
    assert report["input"] == 2 == report["quarantined"] and report["kept"] == 0


def test_the_report_page_has_a_header_and_the_full_text_of_every_record_taken_out(tmp_path):
    out, results = _pipeline(tmp_path)
    results.append(DataStageResult(stage="augment", records="", counts={"augmented": 0}))
    header = {"task": "tickets", "flow run": "brave-fox (1234)", "input sha256": "ab" * 32, "config": {"clean": {"near_dedup": True}}}
    page = open(write_data_report(out, results, None, header).report_html, encoding="utf-8").read()
    assert "<th>task</th><td>tickets</td>" in page and "brave-fox (1234)" in page and "ab" * 32 in page
    assert "<th>generated</th>" in page and "near_dedup" in page
    assert "{broken" in page  # the unparsable line itself, not only its line number
    assert "Duplicate clusters</b> (5)" in page and "Showing all 5 clusters." in page and "(the 5 largest shown)" in page
    assert "parse_json: Expecting" in page  # the quarantine line says why: the parse error itself, not only its name
    assert page.count("<section id=") >= 7 and "<nav>" in page  # the evaluation report's page style
    assert "A different answer for the same question." in page  # both answers of the conflict are shown
    assert "Quarantined records</b> (3)" in page and "Conflicting answers held for review</b> (1)" in page
    removed = read_jsonl(results[2].removed)
    assert len(removed) == 5 and all(f"REMOVED {r['id']}" in page for r in removed)


def test_a_long_record_section_says_how_many_records_it_leaves_out():
    from loraflow.tasks.data.report_records import SHOWN_PER_SECTION, quarantine_section

    rows = [{"line": i, "stage": "validate", "raw": {"messages": [{"role": "user", "content": f"question {i}"}]},
             "reasons": [{"check": "no_empty_content", "field": "messages"}]} for i in range(SHOWN_PER_SECTION + 7)]
    section = quarantine_section(rows, "data/quarantine.jsonl")
    assert f"Showing {SHOWN_PER_SECTION} of {SHOWN_PER_SECTION + 7} records; the other 7 are in <code>data/quarantine.jsonl</code>" in section
    assert f"question {SHOWN_PER_SECTION - 1}" in section and f"question {SHOWN_PER_SECTION}<" not in section
    assert "[user] question 0" in section and "no_empty_content (messages)" in section


def test_removed_near_duplicate_pairs_show_both_texts(tmp_path):
    system = {"role": "system", "content": "Extract the support ticket as JSON."}
    question = "My CloudDrive order has not arrived yet, the tracking stopped updating three days ago. Please help."
    rows = [{"messages": [system, {"role": "user", "content": question}, {"role": "assistant", "content": '{"category": "shipping"}'}]},
            {"messages": [system, {"role": "user", "content": question + " Thanks"}, {"role": "assistant", "content": '{"category": "shipping"}'}]}]
    path = write_records(tmp_path / "in.jsonl", rows)
    out = str(tmp_path / "run")
    ingest = stages.ingest(str(path), DataConfig(), out)
    valid = stages.validate(ingest, DataConfig(), ["en"], None, 4096, out)
    clean = stages.clean(valid, CleanConfig(near_dup_threshold=0.7), ["en"], out)
    split = stages.split(clean, SplitConfig(), out)
    result = write_data_report(out, [ingest, valid, clean, split], None)
    (pair,) = json.loads(open(result.report_json, encoding="utf-8").read())["near_duplicate_pairs"]
    assert pair["removed_text"] == f"user: {question} Thanks | assistant: {{\"category\": \"shipping\"}}"
    assert pair["kept_text"].startswith(f"user: {question} | assistant:") and pair["similarity"] >= 0.7
    assert "Extract the support ticket" not in pair["kept_text"]
    page = open(result.report_html, encoding="utf-8").read()
    assert question + " Thanks" in page
    assert "help. <del>Thanks </del>| assistant" in page  # what differs: the removed record's extra word


def test_a_quarantine_line_shows_the_failing_value_and_the_counts_explain_several_reasons():
    from loraflow.tasks.data.report_html import text_diff
    from loraflow.tasks.data.report_records import quarantine_section, reason_text

    assert reason_text({"check": "max_tokens", "field": "n_tokens", "value": 172}, 160) == "max_tokens: 172 > 160"
    assert reason_text({"check": "parse_json", "field": None, "value": "Unterminated string at col 41"}) == \
        "parse_json: Unterminated string at col 41"
    assert reason_text({"check": "no_empty_content", "field": "messages", "value": None}) == "no_empty_content (messages)"
    assert reason_text({"check": "no_empty_content", "field": "messages[2].content", "value": "  "}) == \
        'no_empty_content (messages[2].content): "  "'  # a whitespace-only value, quoted so it shows
    rows = [{"line": 7, "stage": "validate", "raw": {"messages": []},
             "reasons": [{"check": "max_tokens", "field": "n_tokens", "value": 172}, {"check": "unique_id", "field": "id", "value": "a-1"}]}]
    assert "line 7 · validate · max_tokens: 172 &gt; 160; unique_id (id): a-1" in quarantine_section(rows, "q.jsonl", 160)
    assert text_diff("the order is late", "the order was late") == "<pre>the order <del>is</del><ins>was</ins> late</pre>"


def test_the_counts_say_why_the_reasons_outnumber_the_quarantined_records():
    from loraflow.tasks.data.report import _markdown
    from loraflow.tasks.data.report_html import _counts

    report = {"kind": "sft", "input": 20, "kept": 9, "quarantined": 11, "review": 0, "pilot_skipped": 0, "augmented": 0,
              "removed": {}, "removed_total": 0, "splits": {}, "leakage_moves": 0, "split_clustered_records": 0,
              "quarantined_by_reason": {"max_tokens": 7, "parse_json": 5}, "quarantined_multi_reason": 1, "split_note": None}
    markdown = _markdown(report)
    assert "1 of the 11 quarantined records have more than one reason, so the reasons add up to 12" in markdown
    assert "the 11 quarantined records carry 12 reasons (1 record has more than one)" in _counts(report, markdown)
