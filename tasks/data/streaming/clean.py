"""Clean streamed: normalise and filter partition by partition (`clean_one`), then exact dedup, conflicts and global
near-dedup over 16-byte keys, LSH band keys and on-disk MinHash signatures, then write the outputs partition by
partition. Kept, removed and review records equal `loraflow.tasks.data.clean.clean_records` on the whole file."""
import hashlib
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.preferences import is_pair
from loraflow.schemas.records import CleanRecord, row_failures
from loraflow.tasks.data.clean import (
    REVIEW_REASONS, _answers_conflict, _removal, clean_one, conflict_reviews, near_removal, prompt_key, quality_review,
)
from loraflow.tasks.data.dedup import compared_texts, content_key, greedy_duplicates, merge_pairs, request_answer, typo_arrays
from loraflow.tasks.data.typo_dups import typo_keys, typo_pairs, typo_units
from loraflow.tasks.data.ingest import stage_dir
from loraflow.tasks.common.jsonl import _dumps
from loraflow.tasks.data.preferences import comparison_messages, dedup_key
from loraflow.tasks.data.streaming.dedup import SignatureWriter, remove_files, similar_global
from loraflow.tasks.data.streaming.io import Part, join_parts, part_path, partitions, record_batches, rows_at
from loraflow.tasks.data.streaming.validate import first_occurrence
from loraflow.tasks.data.validate import records_frame


def _pair_key(prompt: str, first: str, second: str) -> bytes:
    return hashlib.blake2b(orjson.dumps([prompt, first, second]), digest_size=16).digest()


def clean_part(part: Part, config: CleanConfig, languages: list[str], folder: str) -> dict:
    """Normalise and filter one partition: survivors and quality removals as part files; keys and signatures."""
    folder_ = Path(folder)
    surv_path = part_path(folder_, "survivors.jsonl", part.number)
    quality_path = part_path(folder_, "removed_quality.jsonl", part.number)
    review_path = part_path(folder_, "review_quality.jsonl", part.number)
    surv_path.parent.mkdir(parents=True, exist_ok=True)
    writer = (SignatureWriter(surv_path.parent, "clean", part.number, config.near_dup_threshold, config.minhash_perm,
                              config.ngram_zh, config.ngram_en) if config.near_dedup else None)
    keys, prompts, langs, pairs, same, k1, k2, typo = [], [], [], [], [], [], [], []
    n_input, reasons, n_reviews = 0, Counter(), 0
    with surv_path.open("wb") as sf, quality_path.open("wb") as qf, review_path.open("wb") as rf:
        for _, batch in record_batches(part):
            n_input += len(batch)
            survivors = []
            for record in batch:
                record, problem = clean_one(record, config, languages)
                if problem and problem[0] in REVIEW_REASONS:
                    rf.write(_dumps(quality_review(record, *problem)))
                    n_reviews += 1
                elif problem:
                    qf.write(_dumps(_removal(record, *problem)))
                    reasons[problem[0]] += 1
                else:
                    survivors.append(record)
                    sf.write(_dumps(record))
            for r in survivors:
                keys.append(bytes.fromhex(dedup_key(r)))
                prompt = prompt_key(r["messages"])
                prompts.append(bytes.fromhex(prompt))
                langs.append(sys.intern(r["metadata"]["language"]))
                typo.append(typo_keys(*request_answer(comparison_messages(r))))
                pairs.append(is_pair(r))
                if is_pair(r):
                    chosen, rejected = r["messages"][-1]["content"], r["rejected"]
                    same.append(chosen == rejected)
                    k1.append(_pair_key(prompt, chosen, rejected))
                    k2.append(_pair_key(prompt, rejected, chosen))
            if writer is not None and survivors:
                writer.add([compared_texts(comparison_messages(r), config.near_dup_compare)[0] for r in survivors],
                           [r["metadata"]["language"] for r in survivors])
    n = len(keys)
    return {"survivors": str(surv_path), "quality": str(quality_path), "review": str(review_path), "n_reviews": n_reviews,
            "n_input": n_input, "n": n, "reasons": reasons,
            "keys": np.array(keys, "S16").reshape(n), "prompts": np.array(prompts, "S16").reshape(n),
            "langs": np.array(langs, dtype=object), "pairs": np.array(pairs, bool),
            "same": np.array(same, bool), "k1": np.array(k1, "S16"), "k2": np.array(k2, "S16"),
            "typo": typo_arrays(typo),
            "sig": writer.close() if writer is not None else None}


def _reviews(config: CleanConfig, survivors: Path, rem: np.ndarray, prompts: np.ndarray, pair_flags: np.ndarray,
             same: np.ndarray, k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, list[tuple[int, dict]]]:
    """(review mask, [(index, review row)]) for the records left after exact dedup (`rem`: their sorted indices)."""
    review = np.zeros(len(pair_flags), bool)
    rows: list[tuple[int, dict]] = []
    if len(rem) and pair_flags[rem[0]]:  # pairs: no contrast, or contradicting another pair
        pos = np.cumsum(pair_flags) - 1  # index among pairs
        p = pos[rem]
        contradicting = np.isin(k2[p], k1[p])
        flagged = same[p] | contradicting
        for i, r in rows_at(survivors, rem[flagged]):
            reason = "chosen_equals_rejected" if same[pos[i]] else "contradicting_preferences"
            rows.append((i, {**r, "review": {"reason": reason, "group": content_key(r["messages"][:-1])[:16], "stage": "clean"}}))
        review[rem[flagged]] = True
    elif config.conflicts_to_review and len(rem):
        uniq, counts = np.unique(prompts[rem], return_counts=True)
        candidates = rem[np.isin(prompts[rem], uniq[counts > 1])]
        groups: dict[bytes, list[tuple[int, dict]]] = {}
        for i, r in rows_at(survivors, candidates):
            groups.setdefault(bytes(prompts[i]), []).append((i, r))
        for members in groups.values():
            if _answers_conflict([r["messages"][-1]["content"] for _, r in members], config.near_dup_threshold):
                key = prompt_key(members[0][1]["messages"])
                rows += list(zip([i for i, _ in members], conflict_reviews([r for _, r in members], key)))
                review[[i for i, _ in members]] = True
    return review, rows


def write_part(item: tuple, config: CleanConfig, folder: str) -> dict:
    """Write one partition of survivors: kept records, exact and near removals (rows need the kept ids/records)."""
    part, action, first_ids, near = item  # action: 0 keep, 1 exact duplicate (of first_ids), 2 review, 3 near duplicate
    folder_ = Path(folder)
    out = {name: str(part_path(folder_, f"{name}.jsonl", part.number)) for name in ("cleaned", "exact", "near")}
    languages: Counter = Counter()
    with open(out["cleaned"], "wb") as cf, open(out["exact"], "wb") as ef, open(out["near"], "wb") as nf:
        for first, batch in record_batches(part):
            kept = []
            for i, r in enumerate(batch, start=first):
                a = action[i - part.first_index]
                if a == 0:
                    kept.append(r)
                elif a == 1:
                    ef.write(_dumps(_removal(r, "exact_duplicate", "same normalised conversation", first_ids[i], 1.0)))
                elif a == 3:
                    target, sim = near[i]
                    nf.write(_dumps(near_removal(r, target, sim, config)))
            # The cleaned output must meet the CleanRecord contract; a failure here is a bug in cleaning, not bad data.
            failures = row_failures(CleanRecord.to_schema(), records_frame(kept)) if kept else {}
            if failures:
                row, reasons = next(iter(failures.items()))
                raise RuntimeError(f"cleaning produced an invalid record {kept[row]['id']}: {reasons}")
            for r in kept:
                cf.write(_dumps(r))
                languages[r["metadata"]["language"]] += 1
    return {**out, "languages": languages}


def clean_stream(records_path: str, config: CleanConfig, languages: list[str], out_dir: str, engine, part_bytes: int) -> dict:
    """clean_records, partition by partition on `engine` with global dedup; the same files and counts."""
    folder = stage_dir(out_dir)
    work = folder / "parts"
    results = engine.map(clean_part, partitions(records_path, part_bytes), config=config, languages=languages, folder=str(folder))
    survivors = folder / "survivors.jsonl"
    join_parts([r["survivors"] for r in results], survivors)
    n = sum(r["n"] for r in results)
    keys = np.concatenate([r["keys"] for r in results]) if n else np.empty(0, "S16")
    prompts = np.concatenate([r["prompts"] for r in results]) if n else np.empty(0, "S16")
    pair_flags = np.concatenate([r["pairs"] for r in results]) if n else np.empty(0, bool)
    same, k1, k2 = (np.concatenate([r[k] for r in results]) for k in ("same", "k1", "k2"))
    action = np.zeros(n, np.int8)
    first = first_occurrence(keys) if n and config.exact_dedup else np.arange(n)
    action[first != np.arange(n)] = 1
    rem = np.flatnonzero(action == 0)
    review, review_rows = _reviews(config, survivors, rem, prompts, pair_flags, same, k1, k2)
    action[review] = 2
    compared = np.flatnonzero(action == 0)
    near: dict[int, tuple[dict, float]] = {}
    if config.near_dedup and len(compared) > 1:
        langs = np.concatenate([r["langs"] for r in results])
        has = np.concatenate([r["sig"]["has"] for r in results])

        def more_texts(k, index):
            texts = {i: compared_texts(comparison_messages(r), config.near_dup_compare) for i, r in rows_at(survivors, index)}
            return [texts[i][k] for i in index.tolist()] if k < len(next(iter(texts.values()))) else None

        pairs, sims = similar_global(engine, [r["sig"] for r in results], [r["n"] for r in results], compared, has,
                                     config.near_dup_threshold, config.minhash_perm, work, more_texts, langs,
                                     config.ngram_zh, config.ngram_en)
        typo_n = np.concatenate([r["typo"][0] for r in results])[compared]
        typo_keys_ = np.concatenate([r["typo"][1] for r in results])[compared]

        def units_of(positions):
            return {int(p): typo_units(request_answer(comparison_messages(r))[0])
                    for p, (_, r) in zip(positions.tolist(), rows_at(survivors, compared[positions]))}

        pairs, sims = merge_pairs(pairs, sims, *typo_pairs(typo_n, typo_keys_, units_of))
        dups = {int(compared[j]): (int(compared[i]), s) for j, (i, s) in greedy_duplicates(pairs, sims).items()}
        targets = {i: r for i, r in rows_at(survivors, np.array(sorted({i for i, _ in dups.values()}), np.int64))}
        near = {j: (targets[i], s) for j, (i, s) in dups.items()}
        action[list(near)] = 3
    if config.near_dedup:
        remove_files([r["sig"] for r in results])
    dup_index = np.flatnonzero(action == 1)
    needed = np.unique(first[dup_index])
    ids = {i: r["id"] for i, r in rows_at(survivors, needed)}
    first_ids = {int(j): ids[int(first[j])] for j in dup_index}
    items = partitions(survivors, part_bytes)
    bounds = [p.first_index for p in items] + [n]
    work_items = [(p, action[bounds[k]:bounds[k + 1]], {j: v for j, v in first_ids.items() if bounds[k] <= j < bounds[k + 1]},
                   {j: v for j, v in near.items() if bounds[k] <= j < bounds[k + 1]}) for k, p in enumerate(items)]
    written = engine.map(write_part, work_items, config=config, folder=str(folder))
    paths = {name: folder / f"{name}.jsonl" for name in ("cleaned", "removed", "review")}
    join_parts([w["cleaned"] for w in written], paths["cleaned"])
    join_parts([r["quality"] for r in results] + [w["exact"] for w in written] + [w["near"] for w in written], paths["removed"])
    join_parts([r["review"] for r in results], paths["review"])  # the quality filters' reviews first, as in memory
    with paths["review"].open("ab") as f:
        f.write(b"".join(_dumps(row) for _, row in review_rows))
    survivors.unlink(missing_ok=True)
    by_reason = sum((r["reasons"] for r in results), Counter())
    by_reason.update({"exact_duplicate": int((action == 1).sum()), "near_duplicate": len(near)})
    by_reason = +by_reason  # drop zero counts
    kept = int((action == 0).sum())
    return {
        "stage": "clean", "records": str(paths["cleaned"]), "removed": str(paths["removed"]), "review": str(paths["review"]),
        "counts": {"input": sum(r["n_input"] for r in results), "kept": kept, "removed": dict(sorted(by_reason.items())),
                   "removed_total": sum(by_reason.values()), "review": len(review_rows) + sum(r["n_reviews"] for r in results),
                   "languages": dict(sum((w["languages"] for w in written), Counter()))},
    }
