"""Splits: ratios, seeds, strata, time order, groups, leakage moves, and a frozen test set across runs."""
import random
import shutil

import pytest

from loraflow.schemas.config.split import SplitConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.split import split_records
from tests.unit.data_support import EN_EXTRA


def _record(i, rng, **meta):
    words = " ".join(rng.choice(EN_EXTRA) for _ in range(25))
    return {"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i} {words}"},
                                        {"role": "assistant", "content": f"answer {i} {words[::-1]}"}],
            "metadata": {"language": "en", **meta}}


def _records(n, seed=0, **meta_of):
    rng = random.Random(seed)
    return [_record(i, rng, **{k: f(i) for k, f in meta_of.items()}) for i in range(n)]


def _split(tmp_path, records, **config):
    path = tmp_path / "cleaned.jsonl"
    write_jsonl(path, records)
    result = split_records(str(path), SplitConfig(**config), str(tmp_path))
    return result, {name: read_jsonl(result[name]) for name in ("train", "val", "test")}


def _ids(split):
    return {name: [r["id"] for r in rows] for name, rows in split.items()}


def test_ratios_seed_and_disjointness(tmp_path):
    records = _records(200)
    result, split = _split(tmp_path / "a", records)
    ids = _ids(split)
    assert (len(ids["train"]), len(ids["val"]), len(ids["test"])) == (160, 20, 20)
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == sorted(r["id"] for r in records)
    assert _ids(_split(tmp_path / "b", records)[1]) == ids
    assert _ids(_split(tmp_path / "c", records, seed=7)[1])["test"] != ids["test"]
    assert result["counts"]["input"] == 200 and result["counts"]["leakage_moves"] == 0


def test_tiny_inputs_still_get_a_test_record(tmp_path):
    _, split = _split(tmp_path, _records(4))
    assert len(split["test"]) >= 1 and sum(len(v) for v in split.values()) == 4


def test_stratified_split_spreads_every_value(tmp_path):
    records = _records(300, category=lambda i: ["billing", "tech", "sales"][i % 3])
    _, split = _split(tmp_path, records, stratify_by="category")
    for name, expected in (("train", 80), ("val", 10), ("test", 10)):
        counts = {c: sum(r["metadata"]["category"] == c for r in split[name]) for c in ("billing", "tech", "sales")}
        assert all(abs(v - expected) <= 1 for v in counts.values()), (name, counts)


def test_time_ordered_split_puts_the_latest_in_test(tmp_path):
    records = _records(100, ts=lambda i: f"2024-01-01T00:00:00+00:00" if i == 0 else f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00")
    random.Random(1).shuffle(records)
    _, split = _split(tmp_path, records, time_field="ts")
    latest = {name: (min(r["metadata"]["ts"] for r in rows), max(r["metadata"]["ts"] for r in rows)) for name, rows in split.items()}
    assert latest["train"][1] <= latest["val"][0] and latest["val"][1] <= latest["test"][0]


def test_time_field_missing_is_a_clear_error(tmp_path):
    with pytest.raises(LoraflowError, match="metadata.ts"):
        _split(tmp_path, _records(5), time_field="ts")


def test_groups_and_parents_stay_together(tmp_path):
    records = _records(200, user=lambda i: f"u{i // 5}")
    records[150]["metadata"]["parent_id"] = "r3"  # an augmented-style child follows its parent's group
    _, split = _split(tmp_path, records, group_by="user")
    where = {r["id"]: name for name, rows in split.items() for r in rows}
    for g in range(40):
        assert len({where[f"r{i}"] for i in range(5 * g, 5 * g + 5)}) == 1
    assert where["r150"] == where["r3"]


def test_leaked_duplicates_share_a_split_never_copied(tmp_path):
    records = _records(200)
    rng = random.Random(5)
    for k in range(30):  # near copies (one word changed) and a same-prompt pair scattered over the input
        src = records[k]
        words = src["messages"][1]["content"].split()
        words[rng.randrange(2, len(words))] = "changed"
        records.append({"id": f"n{k}", "messages": [src["messages"][0], {"role": "assistant", "content": " ".join(words)}],
                        "metadata": {"language": "en"}})
    result, split = _split(tmp_path, records)
    where = {r["id"]: name for name, rows in split.items() for r in rows}
    assert len(where) == len(records) == sum(len(v) for v in split.values())
    assert all(where[f"n{k}"] == where[f"r{k}"] for k in range(30))
    # Linked records are split as units, so nothing has to move afterwards (moves now only follow a frozen test set).
    assert read_jsonl(result["moves"]) == [] and result["counts"]["leakage_moves"] == 0
    assert result["counts"]["clustered_records"] == 60


def test_frozen_test_set_survives_a_second_run(tmp_path):
    first_records = _records(100)
    first, split1 = _split(tmp_path / "run1", first_records)
    frozen = tmp_path / "frozen_test.jsonl"
    shutil.copy(first["test"], frozen)
    rng = random.Random(9)
    new = [_record(1000 + i, rng) for i in range(60)]
    second, split2 = _split(tmp_path / "run2", first_records + new, frozen_test=str(frozen))
    assert _ids(split2)["test"] == _ids(split1)["test"]
    new_ids = {r["id"] for r in new}
    assert new_ids <= set(_ids(split2)["train"]) | set(_ids(split2)["val"])
    assert not set(_ids(split1)["test"]) & (set(_ids(split2)["train"]) | set(_ids(split2)["val"]))
    counts = second["counts"]
    assert counts["frozen_matched"] == 10 and counts["frozen_added"] == 0
    assert counts["train"] + counts["val"] + counts["test"] == counts["input"] == 160
    # A later lineage run without the old records still tests on exactly the frozen set.
    third, split3 = _split(tmp_path / "run3", new, frozen_test=str(frozen))
    assert _ids(split3)["test"] == _ids(split1)["test"] and third["counts"]["frozen_added"] == 10


def test_missing_frozen_test_file_is_a_clear_error(tmp_path):
    with pytest.raises(LoraflowError, match="split.frozen_test"):
        _split(tmp_path, _records(5), frozen_test=str(tmp_path / "nope.jsonl"))


def _clustered(n_distinct: int, clusters: int, size: int, seed: int = 0) -> list[dict]:
    """n_distinct records plus `clusters` groups of `size` near copies (one word changed each) of further records."""
    rng = random.Random(seed)
    records = _records(n_distinct + clusters, seed)
    for c in range(clusters):
        src = records[n_distinct + c]
        for k in range(1, size):
            words = src["messages"][1]["content"].split()
            words[rng.randrange(2, len(words))] = f"changed{k}"
            records.append({"id": f"c{c}-{k}", "messages": [src["messages"][0], {"role": "assistant", "content": " ".join(words)}],
                            "metadata": {"language": "en"}})
    rng.shuffle(records)
    return records


def test_near_duplicate_clusters_are_split_as_units_and_the_ratios_hold(tmp_path):
    records = _clustered(200, 40, 4)  # 360 records, 40 clusters of 4: the leakage fix used to bend 0.8/0.1/0.1
    result, split = _split(tmp_path, records)
    where = {r["id"]: name for name, rows in split.items() for r in rows}
    for c in range(40):  # cluster c copies record r{200 + c}
        assert len({where[f"r{200 + c}"]} | {where[f"c{c}-{k}"] for k in range(1, 4)}) == 1
    counts = result["counts"]
    assert abs(counts["train"] - 288) <= 3 and abs(counts["val"] - 36) <= 3 and abs(counts["test"] - 36) <= 3
    assert counts["leakage_moves"] == 0 and counts["ratio_note"] is None
    assert counts["clustered_records"] == 160


def test_a_cluster_too_large_for_the_ratios_is_reported(tmp_path):
    records = _clustered(20, 1, 130)  # one cluster holds 130 of 150 records: more than the train share of 120
    result, split = _split(tmp_path, records)
    note = result["counts"]["ratio_note"]
    assert note and "130 records" in note and "split.train" in note
    assert sum(len(v) for v in split.values()) == 150
