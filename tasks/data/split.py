"""Leak-free train/val/test splits: random, stratified, time-ordered, grouped, with a frozen test set."""
import random
from collections import Counter
from pathlib import Path

import pandas as pd

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.split import SplitConfig
from loraflow.schemas.records import SPLITS, SplitRecord, row_failures
from loraflow.tasks.data.dedup import content_key, similar_records
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.ingest import stage_dir
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.validate import records_frame

RANK = {"train": 0, "val": 1, "test": 2}  # leaked records move toward the split that must stay unseen


def _units(records: list[dict], group_by: str | None, links: list[tuple[int, int, str, float]]) -> list[int]:
    """Unit index per record: records sharing a group value or a parent id, or linked as duplicates, form one unit."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index_of = {r["id"]: i for i, r in enumerate(records)}
    first_of_group: dict = {}
    pairs = [(a, b) for a, b, _, _ in links]
    for i, r in enumerate(records):
        meta = r["metadata"]
        if group_by and meta.get(group_by) is not None:
            pairs.append((i, first_of_group.setdefault(str(meta[group_by]), i)))
        if meta.get("parent_id") in index_of:
            pairs.append((i, index_of[meta["parent_id"]]))
    for i, j in pairs:
        parent[find(i)] = find(j)
    return [find(i) for i in range(len(records))]


def leakage_links(records: list[dict], threshold: float | None, compare: str) -> list[tuple[int, int, str, float]]:
    """(i, j, kind, similarity) for records that would leak if split apart: exact duplicates, same prompt, near duplicates."""
    links: list[tuple[int, int, str, float]] = []
    for kind, keyer in (("exact_duplicate", lambda r: content_key(r["messages"])),
                        ("same_prompt", lambda r: content_key(r["messages"][:-1]))):
        first: dict[str, int] = {}
        for i, r in enumerate(records):
            j = first.setdefault(keyer(r), i)
            if j != i:
                links.append((j, i, kind, 1.0))
    if threshold is not None and len(records) > 1:
        langs = [r["metadata"].get("language", "en") for r in records]
        pairs, sims = similar_records([r["messages"] for r in records], langs, threshold, compare)
        links.extend((int(a), int(b), "near_duplicate", float(s)) for (a, b), s in zip(pairs, sims))
    return links


def _shares(config: SplitConfig, frozen: bool) -> dict[str, float]:
    if frozen:  # the test split is fixed: new records are shared between train and val only
        total = config.train + config.val
        return {"train": config.train / total, "val": config.val / total, "test": 0.0}
    return {"train": config.train, "val": config.val, "test": config.test}


def _timestamp(record: dict, field: str):
    value = record["metadata"].get(field)
    if value is None:
        raise LoraflowError(f"record {record['id']} (line {record['metadata'].get('source_line')}) has no metadata.{field}; "
                            f"add it to every record or unset split.time_field.")
    return pd.Timestamp(value) if isinstance(value, str) else pd.Timestamp(value, unit="s")


def assign_splits(records: list[dict], config: SplitConfig, frozen: bool,
                  links: list[tuple[int, int, str, float]] = ()) -> tuple[list[str], list[int]]:
    """Split name per record and unit per record, by time, strata or seeded random order over whole units.

    Linked duplicates are one unit, so the leakage fix has nothing to move and the configured shares hold. Outside a
    time split the largest units go first, each into the first split it fits without passing that split's target.
    """
    unit = _units(records, config.group_by, list(links))
    members: dict[int, list[int]] = {}
    for i, u in enumerate(unit):
        members.setdefault(u, []).append(i)
    units = list(members)
    rng = random.Random(config.seed)
    if config.time_field:
        times = {u: min(_timestamp(records[i], config.time_field) for i in members[u]) for u in units}
        strata = {"all": sorted(units, key=lambda u: (times[u], u))}
        order = ("train", "val", "test")  # earliest first
    else:
        strata: dict = {}
        for u in units:
            key = str(records[u]["metadata"].get(config.stratify_by)) if config.stratify_by else "all"
            strata.setdefault(key, []).append(u)
        for key in sorted(strata):
            rng.shuffle(strata[key])
            strata[key].sort(key=lambda u: -len(members[u]))  # stable: equal sizes keep their shuffled order
        order = ("test", "val", "train")
    shares = _shares(config, frozen)
    open_splits = [n for n in order if shares[n] > 0]
    split = [""] * len(records)
    done = Counter()
    seen = 0
    for key in sorted(strata):
        seen += sum(len(members[u]) for u in strata[key])
        # Cumulative targets over strata spread the rounding, so small strata do not all round the same way.
        target, cum, below = {}, 0.0, 0
        for name in order:
            cum += shares[name]
            target[name] = int(seen * cum + 0.5) - below
            below += target[name]
        for u in strata[key]:
            size = 1 if config.time_field else len(members[u])  # time order wins over unit sizes
            name = next((n for n in open_splits if done[n] + size <= target[n]), None)
            if name is None:  # fits nowhere: the latest split in time, else the one furthest below its target
                name = order[-1] if config.time_field else max(open_splits, key=lambda n: target[n] - done[n])
            for i in members[u]:
                split[i] = name
            done[name] += len(members[u])
    return split, unit


def ratio_note(split: list[str], unit: list[int], config: SplitConfig, frozen: bool, tolerance: int = 3) -> str | None:
    """A sentence when the split's sizes miss the configured shares by more than `tolerance` records, naming the cause."""
    return shares_note(Counter(split), lambda: max(Counter(unit).values()), config, frozen, tolerance)


def shares_note(counts: Counter, largest_unit, config: SplitConfig, frozen: bool, tolerance: int = 3) -> str | None:
    """ratio_note from the records per split and a function giving the largest unit's size."""
    shares = _shares(config, frozen)
    new = sum(counts[n] for n in shares if shares[n] > 0) if frozen else sum(counts.values())
    off = {n: counts[n] - shares[n] * new for n in shares if shares[n] > 0}
    if not new or max(abs(v) for v in off.values()) <= tolerance:
        return None
    largest = largest_unit()
    got = "/".join(f"{counts[n] / new:.2f}" for n in off)
    want = "/".join(f"{shares[n]:g}" for n in off)
    return (f"the {'/'.join(off)} shares came out {got} instead of {want}: records kept together (duplicates, "
            f"split.group_by, parents) form units of up to {largest} records, too large for the configured shares; "
            "set split.train/val/test to fit, raise clean.near_dup_threshold or split.leakage_threshold, or deduplicate the data")


def _fix_leaks(records: list[dict], split: list[str], unit: list[int], fixed: set[int],
               links: list[tuple[int, int, str, float]]) -> list[dict]:
    """Move units so exact and near duplicates share one split (toward test); returns each move.

    Units already hold linked records together, so only links to a frozen test set move anything.
    """
    by_unit: dict[int, list[int]] = {}
    for i, u in enumerate(unit):
        by_unit.setdefault(u, []).append(i)
    moves = []
    changed = True
    while changed:  # splits only ever move toward test, so this settles
        changed = False
        for a, b, kind, sim in links:
            if split[a] == split[b]:
                continue
            low, high = (a, b) if RANK[split[a]] < RANK[split[b]] else (b, a)
            if unit[low] in fixed:
                continue
            target = split[high]
            for i in by_unit[unit[low]]:
                if split[i] != target:
                    moves.append({"id": records[i]["id"], "from": split[i], "to": target, "reason": kind,
                                  "of": records[high]["id"], "similarity": round(sim, 4)})
                    split[i] = target
            changed = True
    return moves


def missing_stratify_field(config: SplitConfig, fields) -> LoraflowError:
    """The error for a split.stratify_by that no record has: the split would silently be unstratified."""
    have = ", ".join(sorted(fields)[:30]) or "none"
    return LoraflowError(f"split.stratify_by: no record has metadata.{config.stratify_by}, so nothing could be stratified; "
                         f"records have the metadata fields {have}: name one of them, or unset split.stratify_by")


def split_records(records_path: str, config: SplitConfig, out_dir: str) -> dict:
    """Split records into train/val/test without leakage; a frozen test set is kept as the test split."""
    records = read_jsonl(records_path)
    if config.stratify_by and records and not any(config.stratify_by in r["metadata"] for r in records):
        raise missing_stratify_field(config, {key for r in records for key in r["metadata"]})
    n_input = len(records)
    frozen: list[dict] = []
    matched = 0
    if config.frozen_test:
        if not Path(config.frozen_test).is_file():
            raise LoraflowError(f"{config.frozen_test}: frozen test set not found (split.frozen_test); point it at an earlier run's data/test.jsonl or unset it.")
        frozen = read_jsonl(config.frozen_test)
        frozen_keys = {content_key(r["messages"]) for r in frozen} | {r["id"] for r in frozen}
        pool = [r for r in records if content_key(r["messages"]) not in frozen_keys and r["id"] not in frozen_keys]
        matched = n_input - len(pool)  # these are already in the test split as their frozen copies
        records = pool
    everything = records + frozen
    links = leakage_links(everything, config.leakage_threshold, config.leakage_compare) if config.leakage_check else []
    n = len(records)
    split, unit = assign_splits(records, config, bool(frozen), [link for link in links if link[0] < n and link[1] < n])
    if len(records) >= 3 and not frozen and "test" not in split and "train" in split:
        split[split.index("train")] = "test"  # tiny inputs: rounding must not leave the test split empty
    note = ratio_note(split, unit, config, bool(frozen))
    split += ["test"] * len(frozen)
    unit += [len(everything) + i for i in range(len(frozen))]
    fixed = set(unit[len(records):])
    moves = _fix_leaks(everything, split, unit, fixed, links)

    frame = records_frame(everything)
    frame["split"] = pd.Series(split, dtype=object)
    # Records met the CleanRecord contract in clean; here the split-specific part is checked: ids unique across splits.
    failures = row_failures(SplitRecord.to_schema().select_columns(["id", "split"]), frame[["id", "split"]]) if everything else {}
    if failures:
        row, reasons = next(iter(failures.items()))
        raise RuntimeError(f"split produced an invalid record {everything[row]['id']}: {reasons}")

    data = RunFolder(out_dir).data
    paths = {name: data / f"{name}.jsonl" for name in SPLITS}
    for name in SPLITS:
        write_jsonl(paths[name], (r for r, s in zip(everything, split) if s == name))
    moves_path = stage_dir(out_dir) / "leakage_moves.jsonl"
    write_jsonl(moves_path, moves)
    counts = Counter(split)
    return {
        "stage": "split",
        **{name: str(p) for name, p in paths.items()},
        "moves": str(moves_path),
        "counts": {"input": n_input, **{name: counts.get(name, 0) for name in SPLITS},
                   "frozen_test": len(frozen), "frozen_matched": matched, "frozen_added": len(frozen) - matched,
                   "leakage_moves": len(moves), "moves_by_reason": dict(Counter(m["reason"] for m in moves)),
                   "clustered_records": sum(c for c in Counter(unit[:n]).values() if c > 1), "ratio_note": note},
        "leakage_moves_sample": moves[:20],
    }
