"""`loraflow.tasks.data.split`'s units, split assignment and leakage fix on numpy arrays instead of record lists: the same union
order, the same roots, the same seeded shuffles and the same greedy fill, so every record lands where
`split_records` puts it, in a few bytes per record."""
import random
from array import array
from collections import Counter

import numpy as np

from loraflow.schemas.config.split import SplitConfig
from loraflow.tasks.data.split import RANK, _shares

_NONE = np.zeros(1, "S16")[0]  # the digest field of a record without a parent id or group value


def _last_index(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted ids, index of the last record with each) for {id: index} lookups where later records win."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    last = np.r_[sorted_ids[1:] != sorted_ids[:-1], True]
    return sorted_ids[last], order[last]


def union_units(n: int, links: list, ids: np.ndarray, groups: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """The unit (root record index) of each record, by the union-find of `loraflow.tasks.data.split._units` in its order of unions:
    links, then per record its group's first record and its parent."""
    parent = array("q", range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [(a, b) for a, b, _, _ in links]
    has_group = groups != _NONE
    has_parent = parents != _NONE
    extra = np.flatnonzero(has_group | has_parent)
    if len(extra):
        group_first = np.full(n, -1, np.int64)
        if has_group.any():
            gi = np.flatnonzero(has_group)
            group_first[gi] = gi[first_of(groups[gi])]
        parent_of = np.full(n, -1, np.int64)
        if has_parent.any():
            keys, where = _last_index(ids)
            pi = np.flatnonzero(has_parent)
            pos = np.clip(np.searchsorted(keys, parents[pi]), 0, max(0, len(keys) - 1))
            found = keys[pos] == parents[pi]
            parent_of[pi[found]] = where[pos[found]]
        for i in extra.tolist():
            if group_first[i] >= 0:
                pairs.append((i, int(group_first[i])))
            if parent_of[i] >= 0:
                pairs.append((i, int(parent_of[i])))
    for i, j in pairs:
        parent[find(i)] = find(j)
    roots = np.frombuffer(parent, dtype=np.int64).copy() if n else np.empty(0, np.int64)
    while True:  # pointer jumping: every record to its tree's root, as find() would return
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            return roots
        roots = nxt


def first_of(keys: np.ndarray) -> np.ndarray:
    """Index (into keys) of the first entry with each entry's key."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def assign_units(unit: np.ndarray, config: SplitConfig, frozen: bool, strata_values: np.ndarray,
                 times: np.ndarray | None) -> np.ndarray:
    """Split code (RANK) per record, as `loraflow.tasks.data.split.assign_splits` assigns whole units."""
    n = len(unit)
    if not n:
        return np.empty(0, np.int8)
    uniq, first_idx, counts = np.unique(unit, return_index=True, return_counts=True)
    units = uniq[np.argsort(first_idx, kind="stable")]  # first-appearance order, as list(members)
    size = np.zeros(n, np.int64)
    size[uniq] = counts
    rng = random.Random(config.seed)
    if config.time_field:
        earliest = np.full(n, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(earliest, unit, times)
        strata = {"all": units[np.lexsort((units, earliest[units]))].tolist()}
        order = ("train", "val", "test")
    else:
        keys = strata_values[units] if config.stratify_by else np.full(len(units), "all", dtype=object)
        strata = {}
        for key in sorted(set(keys.tolist())):
            strata[key] = units[keys == key].tolist()
        for key in sorted(strata):
            rng.shuffle(strata[key])
            members = np.array(strata[key], np.int64)
            strata[key] = members[np.argsort(-size[members], kind="stable")].tolist()
        order = ("test", "val", "train")
    shares = _shares(config, frozen)
    open_splits = [name for name in order if shares[name] > 0]
    split_of = np.zeros(n, np.int8)
    done: Counter = Counter()
    seen = 0
    for key in sorted(strata):
        seen += int(size[strata[key]].sum())
        target, cum, below = {}, 0.0, 0
        for name in order:
            cum += shares[name]
            target[name] = int(seen * cum + 0.5) - below
            below += target[name]
        sizes = size[strata[key]].tolist()
        for u, s in zip(strata[key], sizes):
            need = 1 if config.time_field else s
            name = next((x for x in open_splits if done[x] + need <= target[x]), None)
            if name is None:
                name = order[-1] if config.time_field else max(open_splits, key=lambda x: target[x] - done[x])
            split_of[u] = RANK[name]
            done[name] += s
    return split_of[unit]


def fix_leaks(split: np.ndarray, unit: np.ndarray, fixed: set[int], links: list) -> list[dict]:
    """`loraflow.tasks.data.split._fix_leaks` on split codes: moves with record indices in "id" and "of" (named later)."""
    order = np.argsort(unit, kind="stable")
    sorted_units = unit[order]
    moves = []
    changed = True
    while changed:
        changed = False
        for a, b, kind, sim in links:
            if split[a] == split[b]:
                continue
            low, high = (a, b) if split[a] < split[b] else (b, a)
            if int(unit[low]) in fixed:
                continue
            target = split[high]
            lo, hi = np.searchsorted(sorted_units, unit[low], "left"), np.searchsorted(sorted_units, unit[low], "right")
            for i in order[lo:hi].tolist():
                if split[i] != target:
                    moves.append({"id": i, "from": _NAMES[split[i]], "to": _NAMES[target], "reason": kind,
                                  "of": high, "similarity": round(sim, 4)})
                    split[i] = target
            changed = True
    return moves


_NAMES = sorted(RANK, key=RANK.get)
