"""Split streamed: per-record keys, unit links and MinHash signatures gathered partition by partition, units and
splits assigned on numpy arrays exactly as `loraflow.tasks.data.split.split_records` assigns them on records, outputs written
partition by partition. The same train/val/test files, leakage moves and counts."""
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from loraflow.schemas.config.split import SplitConfig
from loraflow.schemas.records import SPLITS
from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.data.dedup import compared_texts, content_key
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.ingest import stage_dir
from loraflow.tasks.common.jsonl import _dumps, write_jsonl
from loraflow.tasks.data.split import RANK, _timestamp, missing_stratify_field, shares_note
from loraflow.tasks.data.streaming.dedup import SignatureWriter, remove_files, similar_global
from loraflow.tasks.data.streaming.io import Part, join_parts, part_path, partitions, record_batches, rows_at
from loraflow.tasks.data.streaming.split_units import assign_units, fix_leaks, union_units
from loraflow.tasks.data.streaming.validate import first_occurrence, id_digest

NAMES = sorted(RANK, key=RANK.get)  # split codes 0, 1, 2 = train, val, test


def split_part(part: Part, config: SplitConfig, folder: str, source: str, frozen_keys: np.ndarray | None) -> dict:
    """Keys, unit fields and signatures of one partition of the records (source `pool`) or of the frozen test set."""
    keys, prompts, ids, parents, groups, strata, times, langs, matched = ([] for _ in range(9))
    fields, has_stratum = set(), False  # for split.stratify_by: the metadata fields seen, and whether it is one
    writer = (SignatureWriter(Path(folder) / "parts", f"split-{source}", part.number, config.leakage_threshold, 128, 3, 3)
              if config.leakage_check else None)
    for _, batch in record_batches(part):
        batch_keys = [bytes.fromhex(content_key(r["messages"])) for r in batch]
        batch_ids = [id_digest(r["id"]) for r in batch]
        hit = (np.isin(np.array(batch_keys, "S16"), frozen_keys) | np.isin(np.array(batch_ids, "S16"), frozen_keys)
               if frozen_keys is not None and batch else np.zeros(len(batch), bool))
        keys += batch_keys
        ids += batch_ids
        matched += hit.tolist()
        for r, is_matched in zip(batch, hit.tolist()):
            prompts.append(bytes.fromhex(content_key(r["messages"][:-1])))
            meta = r["metadata"]
            parents.append(id_digest(meta["parent_id"]) if meta.get("parent_id") is not None else b"")
            groups.append(id_digest(str(meta[config.group_by])) if config.group_by and meta.get(config.group_by) is not None else b"")
            strata.append(sys.intern(str(meta.get(config.stratify_by))) if config.stratify_by else "all")
            if config.stratify_by:
                fields.update(meta)
                has_stratum = has_stratum or config.stratify_by in meta
            langs.append(sys.intern(meta.get("language", "en")))
            if config.time_field:  # matched frozen-set copies and the frozen set itself are not split by time
                times.append(_timestamp(r, config.time_field).value if source == "pool" and not is_matched else 0)
        if writer is not None and batch:
            writer.add([compared_texts(r["messages"], config.leakage_compare)[0] for r in batch], langs[len(langs) - len(batch):])
    n = len(keys)
    return {"n": n, "keys": np.array(keys, "S16").reshape(n), "prompts": np.array(prompts, "S16").reshape(n),
            "ids": np.array(ids, "S16").reshape(n), "parents": np.array(parents, "S16").reshape(n),
            "groups": np.array(groups, "S16").reshape(n), "strata": np.array(strata, dtype=object),
            "times": np.array(times, np.int64) if config.time_field else None, "langs": np.array(langs, dtype=object),
            "matched": np.array(matched, bool).reshape(n),
            "sig": writer.close() if writer is not None else None, "fields": fields, "has_stratum": has_stratum}


def _links(keys: np.ndarray, prompts: np.ndarray) -> list[tuple[int, int, str, float]]:
    """Exact-duplicate then same-prompt links (first, later), each kind in order of the later record."""
    links = []
    for kind, k in (("exact_duplicate", keys), ("same_prompt", prompts)):
        if len(k):
            first = first_occurrence(k)
            later = np.flatnonzero(first != np.arange(len(k)))
            links += [(int(first[i]), int(i), kind, 1.0) for i in later]
    return links


def _gather(parts: list[dict], field: str):
    return np.concatenate([p[field] for p in parts])


def write_split_part(item: tuple, folder: str) -> dict:
    """Write one partition's records to its train/val/test part files (matched frozen-set copies left out)."""
    part, codes, tag = item  # codes: split code per line of the part, -1 for a record not written
    out = {name: str(part_path(Path(folder) / "split", f"{name}-{tag}.jsonl", part.number)) for name in SPLITS}
    Path(out["train"]).parent.mkdir(parents=True, exist_ok=True)
    files = {name: open(out[name], "wb") for name in SPLITS}
    try:
        for first, batch in record_batches(part):
            for i, r in enumerate(batch, start=first - part.first_index):
                if codes[i] >= 0:
                    files[NAMES[codes[i]]].write(_dumps(r))
    finally:
        for f in files.values():
            f.close()
    return out


def split_stream(records_path: str, config: SplitConfig, out_dir: str, engine, part_bytes: int) -> dict:
    """split_records, partition by partition on `engine`; the same files, moves and counts."""
    stage = stage_dir(out_dir)
    frozen_parts, frozen_keys = [], None
    if config.frozen_test:
        if not Path(config.frozen_test).is_file():
            raise LoraflowError(f"{config.frozen_test}: frozen test set not found (split.frozen_test); point it at an earlier run's data/test.jsonl or unset it.")
        frozen_parts = partitions(config.frozen_test, part_bytes)
    pool_parts = partitions(records_path, part_bytes)
    frozen = engine.map(split_part, frozen_parts, config=config, folder=str(stage), source="frozen", frozen_keys=None)
    if frozen:
        frozen_keys = np.unique(np.concatenate([_gather(frozen, "keys"), _gather(frozen, "ids")]))
    pool = engine.map(split_part, pool_parts, config=config, folder=str(stage), source="pool", frozen_keys=frozen_keys)
    if config.stratify_by and any(p["n"] for p in pool) and not any(p["has_stratum"] for p in pool):
        raise missing_stratify_field(config, set().union(*(p["fields"] for p in pool)))
    everything = pool + frozen
    matched = _gather(pool, "matched")
    n_input, n_frozen = len(matched), sum(p["n"] for p in frozen)
    in_e = np.concatenate([~matched, np.ones(n_frozen, bool)])  # rows of all parts (pool, then frozen) that are records
    e_index = np.flatnonzero(in_e)  # global row of each record of `everything` (pool records first, then frozen)
    n = int((~matched).sum())
    keys, prompts = _gather(everything, "keys")[e_index], _gather(everything, "prompts")[e_index]
    links = _links(keys, prompts) if config.leakage_check else []
    del keys, prompts
    files = [str(records_path)] * len(pool_parts) + [str(config.frozen_test)] * len(frozen_parts)
    offsets = np.cumsum([0] + [p["n"] for p in everything])
    if config.leakage_check and len(e_index) > 1:
        langs = _gather(everything, "langs")

        def more_texts(k, rows):
            texts = {}
            for f, lo, hi in _file_ranges(files, offsets, pool_parts, frozen_parts):
                sel = rows[(rows >= lo) & (rows < hi)]
                texts.update({lo + i: compared_texts(r["messages"], config.leakage_compare) for i, r in rows_at(f, sel - lo)})
            return [texts[i][k] for i in rows.tolist()] if k < len(next(iter(texts.values()))) else None

        has = np.concatenate([p["sig"]["has"] for p in everything])
        pairs, sims = similar_global(engine, [p["sig"] for p in everything], [p["n"] for p in everything], e_index, has,
                                     config.leakage_threshold, 128, stage / "parts", more_texts, langs)
        links += [(int(a), int(b), "near_duplicate", float(s)) for (a, b), s in zip(pairs.tolist(), sims.tolist())]
    if config.leakage_check:
        remove_files([p["sig"] for p in everything])
    pool_rows = e_index[:n]
    unit = union_units(n, [link for link in links if link[0] < n and link[1] < n], _gather(pool, "ids")[pool_rows],
                       _gather(pool, "groups")[pool_rows], _gather(pool, "parents")[pool_rows])
    times = _gather(pool, "times")[pool_rows] if config.time_field else None
    split = assign_units(unit, config, bool(frozen), _gather(pool, "strata")[pool_rows], times)
    if n >= 3 and not frozen and not (split == RANK["test"]).any() and (split == RANK["train"]).any():
        split[np.argmax(split == RANK["train"])] = RANK["test"]  # tiny inputs: rounding must not leave the test split empty
    counts = Counter({NAMES[c]: int(k) for c, k in zip(*np.unique(split, return_counts=True))})
    note = shares_note(counts, lambda: int(np.unique(unit, return_counts=True)[1].max()), config, bool(frozen))
    split = np.concatenate([split, np.full(n_frozen, RANK["test"], np.int8)])
    unit = np.concatenate([unit, len(e_index) + np.arange(n_frozen)])
    moves = fix_leaks(split, unit, set(unit[n:].tolist()), links)
    ids = _gather(everything, "ids")[e_index]
    if len(np.unique(ids)) != len(ids):
        raise RuntimeError("split produced an invalid record: ids are not unique across splits")
    _name_moves(moves, files, offsets, e_index, pool_parts, frozen_parts)
    codes = np.full(offsets[-1], -1, np.int8)
    codes[e_index] = split
    items = [(p, codes[offsets[k]:offsets[k + 1]], "pool" if k < len(pool_parts) else "frozen")
             for k, p in enumerate(pool_parts + frozen_parts)]
    written = engine.map(write_split_part, items, folder=str(stage))
    data = RunFolder(out_dir).data
    paths = {name: data / f"{name}.jsonl" for name in SPLITS}
    for name in SPLITS:
        join_parts([w[name] for w in written], paths[name])
    moves_path = stage / "leakage_moves.jsonl"
    write_jsonl(moves_path, moves)
    per_split = Counter({NAMES[c]: int(k) for c, k in zip(*np.unique(split, return_counts=True))})
    sizes = np.unique(unit[:n], return_counts=True)[1]
    return {
        "stage": "split", **{name: str(p) for name, p in paths.items()}, "moves": str(moves_path),
        "counts": {"input": n_input, **{name: per_split.get(name, 0) for name in SPLITS},
                   "frozen_test": n_frozen, "frozen_matched": int(matched.sum()), "frozen_added": n_frozen - int(matched.sum()),
                   "leakage_moves": len(moves), "moves_by_reason": dict(Counter(m["reason"] for m in moves)),
                   "clustered_records": int(sizes[sizes > 1].sum()), "ratio_note": note},
        "leakage_moves_sample": moves[:20],
    }


def _file_ranges(files, offsets, pool_parts, frozen_parts):
    """(file, first global row, end global row) for the pool file and the frozen file."""
    k = len(pool_parts)
    out = [(files[0], int(offsets[0]), int(offsets[k]))] if pool_parts else []
    if frozen_parts:
        out.append((files[k], int(offsets[k]), int(offsets[-1])))
    return out


def _name_moves(moves: list[dict], files, offsets, e_index, pool_parts, frozen_parts) -> None:
    """Replace the record indices in moves ("id", "of") by the records' ids."""
    wanted = np.unique(np.array([m[k] for m in moves for k in ("id", "of")], np.int64)) if moves else np.empty(0, np.int64)
    rows = e_index[wanted]
    ids = {}
    for f, lo, hi in _file_ranges(files, offsets, pool_parts, frozen_parts):
        sel = rows[(rows >= lo) & (rows < hi)]
        ids.update({lo + i: r["id"] for i, r in rows_at(f, sel - lo)})
    for m in moves:
        m["id"], m["of"] = ids[int(e_index[m["id"]])], ids[int(e_index[m["of"]])]
