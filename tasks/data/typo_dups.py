"""Typo-level copies: the same request with one word misspelled or doubled, or other punctuation, and the same answer.

MinHash over word or character n-grams finds copies of long texts, but a one-word typo in a short message changes
most of its n-grams (a six-word request loses three of its four word 3-grams): such copies slipped through into the
test set. Here a request is reduced to its units (words; characters for Chinese) after case folding, with punctuation
and symbols removed ("。" vs "!!" then cannot differ). Two requests are typo-level copies when their units are equal;
or of equal count with exactly one position differing, that word a misspelling of the other (edit distance <= 2 and
under a third of its length, a swap of two neighbouring letters one edit: "recieve"/"receive", not "madrid"/
"stockholm"), for Chinese one character of a text of at least MIN_ZH_UNITS; or one longer by a unit said twice
("please please"). Candidates are found without comparing all pairs: where one unit differs, the first or the last
k = n//2 units are equal (also for one unit more, with k of the shorter), so records are grouped by (answer, first or
last k units) for k = n//2 and (n-1)//2, and only records within a group are compared.
"""
import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

_NOT_TEXT = re.compile(r"[^\w\s]|_", re.UNICODE)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MIN_ZH_UNITS = 6  # a one-character change in a shorter Chinese text is as likely a different request as a typo
MAX_UNITS = 400  # longer texts: a one-unit change barely moves MinHash similarity, which finds them
MAX_GROUP, WINDOW = 256, 64  # a larger group (a template many requests share) compares each member with its 64 next


def typo_units(text: str) -> list[str]:
    """The text's words (characters where it is Chinese), case-folded, punctuation removed."""
    text = _NOT_TEXT.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    units = []
    for word in text.split():
        units.extend(list(word) if _HAN.search(word) else [word])
    return units


def _digest(parts: Sequence[str]) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()


KEYS = 4  # first and last n//2 units, first and last (n-1)//2 units


def typo_keys(request: str, answer: str) -> tuple[int, tuple[bytes, ...]]:
    """(unit count, KEYS group keys, each the answer with the first or last k units); count 0 for texts not compared."""
    units = typo_units(request)
    if not units or len(units) > MAX_UNITS:
        return 0, (b"",) * KEYS
    answer_key = unicodedata.normalize("NFKC", answer).strip()
    keys = []
    for k in (len(units) // 2, (len(units) - 1) // 2):
        keys += [_digest([answer_key, str(k), "<", *units[:k]]), _digest([answer_key, str(k), ">", *units[len(units) - k:]])]
    return len(units), tuple(keys)


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Edit distance with adjacent transpositions counted as one edit ("emial"/"email": 1), stopping past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, previous = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


def is_typo_copy(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two unit lists (typo_units) are the same request up to one misspelt or doubled unit."""
    if abs(len(a) - len(b)) == 1:
        short, long_ = (a, b) if len(a) < len(b) else (b, a)
        i = next((k for k, (x, y) in enumerate(zip(short, long_)) if x != y), len(short))
        return list(long_[i + 1:]) == list(short[i:]) and (long_[i] == long_[i - 1] if i > 0 else long_[0] == long_[1])
    if len(a) != len(b) or not a:
        return False
    differing = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    if not differing:
        return True
    if len(differing) > 1:
        return False
    x, y = differing[0]
    if len(x) == 1 and len(y) == 1 and _HAN.match(x) and _HAN.match(y):
        return len(a) >= MIN_ZH_UNITS
    limit = min(2, (max(len(x), len(y)) - 1) // 3)
    return limit >= 1 and _edit_distance(x, y, limit) <= limit


def typo_pairs(counts: np.ndarray, keys: np.ndarray, units_of) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of typo-level copies, with a similarity (share of equal units) for each.

    counts, keys: typo_keys per record (keys an [n, KEYS] array of 8-byte keys); units_of(indices) -> {index: units} for
    the candidates only.
    """
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i in np.flatnonzero(counts > 0).tolist():
        for key in set(keys[i].tolist()):
            groups[key].append(i)
    candidates = {(m[a], m[b]) for m in groups.values() if len(m) > 1
                  for a in range(len(m)) for b in range(a + 1, len(m) if len(m) <= MAX_GROUP else min(len(m), a + 1 + WINDOW))}
    if not candidates:
        return np.empty((0, 2), np.int64), np.empty(0)
    units = units_of(np.array(sorted({i for pair in candidates for i in pair}), np.int64))
    found = sorted((i, j) for i, j in candidates if is_typo_copy(units[i], units[j]))
    sims = [sum(x == y for x, y in zip(units[i], units[j])) / max(len(units[i]), len(units[j])) for i, j in found]
    return np.array(found, np.int64).reshape(-1, 2), np.array(sims, float)
