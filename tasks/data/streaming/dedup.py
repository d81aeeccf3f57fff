"""Global near-duplicate search for the streaming stages: MinHash signatures in on-disk part files, LSH band keys
shuffled by band (one task per band reads that band's keys from every partition), candidate pairs as `loraflow.tasks.data.dedup`
finds them over the whole input, so the pairs and similarities are the same."""
from pathlib import Path

import numpy as np

from loraflow.tasks.data.dedup import band_key, band_pairs, lsh_params, minhash_signatures, pair_similarities, refine_pairs, unique_pairs


class SignatureWriter:
    """Signatures of one partition appended to a raw uint32 file, with each LSH band's keys kept for a band file."""

    def __init__(self, folder: Path, name: str, number: int, threshold: float, num_perm: int, ngram_zh: int, ngram_en: int):
        self.folder, self.name, self.number = folder, name, number
        self.num_perm, self.ngram_zh, self.ngram_en = num_perm, ngram_zh, ngram_en
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self.path = folder / f"{name}.sig.part{number:05d}.u32"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("wb")
        self.keys: list[list[np.ndarray]] = [[] for _ in range(self.bands)]
        self.has: list[np.ndarray] = []

    def add(self, texts: list[str], langs: list[str]) -> None:
        sig, has = minhash_signatures(texts, langs, self.num_perm, self.ngram_zh, self.ngram_en)
        self.file.write(sig.tobytes())
        for b in range(self.bands):
            self.keys[b].append(band_key(sig, b, self.rows))
        self.has.append(has)

    def close(self) -> dict:
        """Band key files written; returns the part's signature file, band files and has-shingles flags."""
        self.file.close()
        band_files = []
        for b in range(self.bands):
            path = self.folder / f"{self.name}.band{b:03d}.part{self.number:05d}.npy"
            np.save(path, np.concatenate(self.keys[b]) if self.keys[b] else np.empty(0, np.uint64))
            band_files.append(str(path))
        self.keys = []
        return {"sig": str(self.path), "bands": band_files,
                "has": np.concatenate(self.has) if self.has else np.empty(0, bool)}


class SignatureView:
    """Rows of the signature part files addressed by global index, read on demand.

    Each read maps the part files only while it copies its rows: a mapping kept open would leave every page it ever
    touched counted in the process's resident memory (gigabytes of signatures at 10M records).
    """

    def __init__(self, sig_files: list[str], counts: list[int], num_perm: int):
        self.offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.files, self.counts, self.num_perm = sig_files, counts, num_perm

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.num_perm), dtype=np.uint32)
        part = np.searchsorted(self.offsets, index, side="right") - 1
        for p in np.unique(part).tolist():
            sel = part == p
            rows = np.memmap(self.files[p], dtype=np.uint32, mode="r", shape=(self.counts[p], self.num_perm))
            out[sel] = rows[index[sel] - self.offsets[p]]
            del rows  # unmapped: its pages leave this process's resident set
        return out


def band_candidates(band_files: list[str], eligible_path: str) -> np.ndarray:
    """Candidate pairs of one LSH band: that band's keys from every partition, restricted to the eligible rows
    (a saved array of global indices; pairs come back as positions in the compared list, whose indices are saved too)."""
    keys = np.concatenate([np.load(f) for f in band_files])
    data = np.load(eligible_path)
    compared, eligible = data["compared"], data["eligible"]  # global indices compared; positions among them with shingles
    return band_pairs(keys[compared[eligible]], eligible)


def similar_global(engine, writers: list[dict], counts: list[int], compared: np.ndarray, has: np.ndarray, threshold: float,
                   num_perm: int, work: Path, more_texts=None, langs=None, ngram_zh: int = 3, ngram_en: int = 3):
    """(pairs, sims) among `compared` (sorted global indices; pairs as positions in it) as `loraflow.tasks.data.dedup.similar_records`
    finds them; `more_texts(k, positions)` gives the k-th further compared text of those records (turns comparison)."""
    bands = len(writers[0]["bands"]) if writers else 0
    eligible = np.flatnonzero(has[compared])
    eligible_path = work / "eligible.npz"
    np.savez(eligible_path, compared=compared, eligible=eligible)
    found = engine.map(band_candidates, [[w["bands"][b] for w in writers] for b in range(bands)],
                       eligible_path=str(eligible_path))
    pairs = unique_pairs(found)
    view = SignatureView([w["sig"] for w in writers], counts, num_perm)
    pairs, sims = pair_similarities(pairs, _Positions(view, compared), threshold)
    k = 1
    while more_texts is not None and len(pairs):
        involved = np.unique(pairs)
        texts = more_texts(k, compared[involved])
        if texts is None:
            break
        pairs, sims = refine_pairs(pairs, sims, involved, texts, [langs[i] for i in compared[involved].tolist()], threshold,
                                   num_perm, ngram_zh, ngram_en)
        k += 1
    eligible_path.unlink(missing_ok=True)
    return pairs, sims


class _Positions:
    """Signatures addressed by position in the compared list."""

    def __init__(self, view: SignatureView, compared: np.ndarray):
        self.view, self.compared = view, compared

    def __getitem__(self, positions):
        return self.view[self.compared[positions]]


def remove_files(writers: list[dict]) -> None:
    """Delete the signature and band part files."""
    for w in writers:
        for f in [w["sig"], *w["bands"]]:
            Path(f).unlink(missing_ok=True)
