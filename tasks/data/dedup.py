"""Exact and near-duplicate detection: vectorised MinHash with LSH banding over whole batches."""
import hashlib

import numpy as np

from loraflow.tasks.data.typo_dups import KEYS, typo_keys, typo_pairs, typo_units

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_P = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_P_INV = pow(_P, -1, 2**64)
_Q = np.uint64(0x9E3779B97F4A7C15)
_SEP = "\x00"  # normalised text never holds NUL (control characters are removed), so it can join texts
# ASCII whitespace and punctuation end a word; any other character belongs to one.
_DELIM = np.zeros(128, dtype=bool)
_DELIM[[ord(c) for c in " \t\n\r\x0b\x0c\x00!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]] = True
_BATCH_CHARS = 4_000_000
_CHUNK_ROWS = 32_768


def content_key(messages: list[dict]) -> str:
    """A hash of the whole normalised conversation: equal keys are exact duplicates."""
    # Record and unit separators cannot occur in normalised text (control characters are removed).
    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in messages)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def conversation_text(messages: list[dict]) -> str:
    """Every turn's content as one text (what `conversation` near-duplicate comparison uses)."""
    return "\n".join(m["content"] for m in messages)


def compared_texts(messages: list[dict], compare: str) -> list[str]:
    """The texts near-duplicate detection compares for one record.

    `conversation`: the whole conversation as one text. `turns`: the request turns and the answers as two texts, system
    turns left out: a system prompt every record shares, or an answer template, then cannot make different requests
    look alike.
    """
    if compare == "conversation":
        return [conversation_text(messages)]
    return ["\n".join(m["content"] for m in messages if m["role"] not in ("system", "assistant")),
            "\n".join(m["content"] for m in messages if m["role"] == "assistant")]


def _mix(z: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: spreads polynomial hashes over all 64 bits.
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def _codepoints(texts: list[str]) -> np.ndarray:
    return np.frombuffer(_SEP.join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _ngrams(units: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of n consecutive units that belong to one text, and that text's index."""
    if len(units) < n:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    width = len(units) - n + 1
    h = units[:width].copy()
    for k in range(1, n):
        h = h * _Q + units[k:k + width]
    valid = owner[:width] == owner[n - 1:n - 1 + width]
    return _mix(h[valid]), owner[:width][valid]


def char_shingles(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Character n-gram hashes (for Chinese) of a batch of texts, with each hash's text index."""
    cp = _codepoints(texts)
    is_sep = cp == 0
    owner = np.cumsum(is_sep)
    keep = ~is_sep  # separators are not characters of any text
    return _ngrams(cp[keep], owner[keep], n)


def word_shingles(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes (for English; lowercased, punctuation split) of a batch of texts, with text indices."""
    cp = _codepoints([t.lower() for t in texts])
    owner = np.cumsum(cp == 0)
    delim = np.zeros(len(cp), dtype=bool)
    ascii_ = cp < 128
    delim[ascii_] = _DELIM[cp[ascii_].astype(np.int64)]
    prev_delim = np.concatenate(([True], delim[:-1]))
    next_delim = np.concatenate((delim[1:], [True]))
    starts = np.flatnonzero(~delim & prev_delim)
    ends = np.flatnonzero(~delim & next_delim) + 1
    # Polynomial hash of each word from prefix sums: (prefix[e] - prefix[s]) * P^-s, all modulo 2**64.
    powers = np.full(len(cp), _P, dtype=np.uint64)
    powers[0] = 1
    powers = np.cumprod(powers, dtype=np.uint64)
    inv = np.full(len(cp), _P_INV, dtype=np.uint64)
    inv[0] = 1
    inv = np.cumprod(inv, dtype=np.uint64)
    prefix = np.concatenate(([np.uint64(0)], np.cumsum(cp * powers, dtype=np.uint64)))
    words = _mix((prefix[ends] - prefix[starts]) * inv[starts])
    return _ngrams(words, owner[starts], n)


def _batches(texts: list[str]):
    start, size = 0, 0
    for i, t in enumerate(texts):
        size += len(t) + 1
        if size >= _BATCH_CHARS:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(texts):
        yield start, len(texts)


def minhash_signatures(texts: list[str], langs: list[str], num_perm: int, ngram_zh: int, ngram_en: int,
                       seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32 [n, num_perm], has_shingles bool [n]); zh texts use char n-grams, others word n-grams."""
    rng = np.random.default_rng(seed)
    # Hash family a*x + b modulo 2**32 (a odd) over well-mixed 32-bit shingle hashes: 32-bit lanes and a
    # permutation-major layout make the min-reduction run over contiguous memory, ~8x faster than 64-bit rows.
    a = (rng.integers(0, 2**32, size=(num_perm, 1), dtype=np.uint64).astype(np.uint32)) | np.uint32(1)
    b = rng.integers(0, 2**32, size=(num_perm, 1), dtype=np.uint64).astype(np.uint32)
    sig = np.full((len(texts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    has = np.zeros(len(texts), dtype=bool)
    langs_arr = np.asarray(langs)
    for lang_is_zh in (True, False):
        index = np.flatnonzero((langs_arr == "zh") == lang_is_zh)
        group = [texts[i] for i in index]
        for lo, hi in _batches(group):
            hashes, owner = (char_shingles(group[lo:hi], ngram_zh) if lang_is_zh else word_shingles(group[lo:hi], ngram_en))
            if len(hashes) == 0:
                continue
            c0 = 0
            while c0 < len(hashes):
                # End each chunk on a text boundary so every text's minimum is taken in one piece.
                c1 = min(len(hashes), c0 + _CHUNK_ROWS)
                c1 = int(np.searchsorted(owner, owner[c1 - 1], side="right"))
                h, o = hashes[c0:c1].astype(np.uint32), owner[c0:c1]
                starts = np.flatnonzero(np.concatenate(([True], o[1:] != o[:-1])))
                mins = np.minimum.reduceat(a * h[None, :] + b, starts, axis=1)
                rows = index[lo + o[starts]]
                sig[rows] = mins.T
                has[rows] = True
                c0 = c1
    return sig, has


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives plus false negatives at the threshold, as datasketch does."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def candidate_pairs(sig: np.ndarray, has: np.ndarray, threshold: float, max_run: int = 32) -> np.ndarray:
    """Index pairs (i < j) sharing at least one LSH band; buckets larger than max_run pair within a window."""
    bands, rows = lsh_params(threshold, sig.shape[1])
    eligible = np.flatnonzero(has)
    found = [band_pairs(band_key(sig[eligible], band, rows), eligible, max_run) for band in range(bands)]
    return unique_pairs(found)


def band_key(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One uint64 key per signature row for LSH band `band` (rows `rows` wide): equal bands give equal keys."""
    cols = sig[:, band * rows:(band + 1) * rows].astype(np.uint64)
    key = np.zeros(len(sig), dtype=np.uint64)
    for c in range(cols.shape[1]):
        key = (key ^ cols[:, c]) * _M1
    return key


def band_pairs(key: np.ndarray, eligible: np.ndarray, max_run: int = 32) -> np.ndarray:
    """Pairs of `eligible` indices whose band keys are equal (runs longer than max_run pair within a window)."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    same = sorted_key[1:] == sorted_key[:-1]
    found = []
    if same.any():
        for d in range(1, max_run):
            # Members d apart in a sorted run share the band key when all keys between them are equal.
            run = same if d == 1 else run[:-1] & same[d - 1:]
            hit = np.flatnonzero(run)
            if len(hit) == 0:
                break
            found.append(np.stack([eligible[order[hit]], eligible[order[hit + d]]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def unique_pairs(found: list[np.ndarray]) -> np.ndarray:
    """The distinct pairs (i < j) of several pair arrays, sorted."""
    found = [f for f in found if len(f)]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.sort(np.concatenate(found), axis=1), axis=0)


def similar_pairs(sig: np.ndarray, has: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs whose estimated Jaccard similarity reaches the threshold, with that estimate."""
    return pair_similarities(candidate_pairs(sig, has, threshold), sig, threshold)


def pair_similarities(pairs: np.ndarray, sig, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose estimated Jaccard similarity (signature agreement) reaches the threshold, with that estimate."""
    sims = np.empty(len(pairs))
    for c0 in range(0, len(pairs), _CHUNK_ROWS):
        p = pairs[c0:c0 + _CHUNK_ROWS]
        sims[c0:c0 + len(p)] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    keep = sims >= threshold
    return pairs[keep], sims[keep]


def similar_records(messages: list[list[dict]], langs: list[str], threshold: float, compare: str = "turns",
                    num_perm: int = 128, ngram_zh: int = 3, ngram_en: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Record index pairs (i < j) whose every compared text (see compared_texts) reaches the threshold, with the lowest
    of those estimated Jaccard similarities. Texts too short for a shingle match only when they are equal."""
    parts = [compared_texts(m, compare) for m in messages]
    first = [p[0] for p in parts]
    pairs, sims = similar_pairs(*minhash_signatures(first, langs, num_perm, ngram_zh, ngram_en), threshold)
    for k in range(1, len(parts[0]) if parts else 0):
        if len(pairs) == 0:
            break
        involved = np.unique(pairs)  # signatures only for records in a candidate pair
        texts = [parts[i][k] for i in involved.tolist()]
        pairs, sims = refine_pairs(pairs, sims, involved, texts, [langs[i] for i in involved.tolist()], threshold,
                                   num_perm, ngram_zh, ngram_en)
    return pairs, sims


def refine_pairs(pairs: np.ndarray, sims: np.ndarray, involved: np.ndarray, texts: list[str], langs: list[str],
                 threshold: float, num_perm: int, ngram_zh: int, ngram_en: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs that also reach the threshold on one more compared text (`texts[k]` of record `involved[k]`), with the
    lower similarity; texts too short for a shingle match only when they are equal."""
    sig, has = minhash_signatures(texts, langs, num_perm, ngram_zh, ngram_en)
    a, b = np.searchsorted(involved, pairs[:, 0]), np.searchsorted(involved, pairs[:, 1])
    part_sims = (sig[a] == sig[b]).mean(axis=1)
    neither = ~has[a] & ~has[b]
    equal = np.fromiter((texts[i] == texts[j] for i, j in zip(a[neither].tolist(), b[neither].tolist())), bool, int(neither.sum()))
    part_sims[neither] = equal
    part_sims[has[a] != has[b]] = 0.0
    sims = np.minimum(sims, part_sims)
    keep = sims >= threshold
    pairs, sims = pairs[keep], sims[keep]
    return pairs, sims


def near_duplicates(messages: list[list[dict]], langs: list[str], threshold: float, compare: str = "turns",
                    num_perm: int = 128, ngram_zh: int = 3, ngram_en: int = 3) -> dict[int, tuple[int, float]]:
    """{index of a near-duplicate: (index of the earlier kept record it duplicates, similarity)}: MinHash pairs over the
    threshold and typo-level copies of a request with the same answer (loraflow.tasks.data.typo_dups)."""
    pairs, sims = similar_records(messages, langs, threshold, compare, num_perm, ngram_zh, ngram_en)
    typo, typo_sims = typo_pairs(*typo_key_arrays(messages), lambda index: {i: typo_units(request_answer(messages[i])[0])
                                                                            for i in index.tolist()})
    return greedy_duplicates(*merge_pairs(pairs, sims, typo, typo_sims))


def request_answer(messages: list[dict]) -> tuple[str, str]:
    """The request turns and the answers of a record as two texts (compared_texts' `turns` form)."""
    request, answer = compared_texts(messages, "turns")
    return request, answer


def typo_key_arrays(messages: list[list[dict]]) -> tuple[np.ndarray, np.ndarray]:
    """typo_keys of every record as arrays: unit counts [n] and group keys [n, KEYS]."""
    return typo_arrays([typo_keys(*request_answer(m)) for m in messages])


def typo_arrays(keys: list[tuple[int, tuple[bytes, ...]]]) -> tuple[np.ndarray, np.ndarray]:
    """typo_keys results as (unit counts [n], group keys [n, KEYS] of 8 bytes)."""
    return (np.array([k[0] for k in keys], np.int64),
            np.array([k[1] for k in keys], "S8").reshape(len(keys), KEYS))


def merge_pairs(pairs: np.ndarray, sims: np.ndarray, more: np.ndarray, more_sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two (pairs, similarities) sets as one, each pair once with its higher similarity, sorted."""
    if len(more) == 0:
        return pairs, sims
    both, both_sims = np.concatenate([pairs.reshape(-1, 2), more]), np.concatenate([sims, more_sims])
    order = np.lexsort((-both_sims, both[:, 1], both[:, 0]))
    both, both_sims = both[order], both_sims[order]
    first = np.concatenate(([True], (both[1:] != both[:-1]).any(axis=1)))
    return both[first], both_sims[first]


def greedy_duplicates(pairs: np.ndarray, sims: np.ndarray) -> dict[int, tuple[int, float]]:
    """{j: (i, similarity)}: each later record of a similar pair matched to the earliest record that is itself kept."""
    order = np.lexsort((pairs[:, 0], pairs[:, 1]))
    removed: dict[int, tuple[int, float]] = {}
    for i, j, s in zip(pairs[order, 0].tolist(), pairs[order, 1].tolist(), sims[order].tolist()):
        # Pairs arrive by j then i, so each j is matched to the earliest record that is itself kept.
        if j not in removed and i not in removed:
            removed[j] = (i, s)
    return removed
