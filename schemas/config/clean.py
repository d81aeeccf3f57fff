"""Cleaning: normalisation, deduplication and low-quality filters, each with its threshold."""
from typing import Literal

from pydantic import Field

from loraflow.schemas.config._base import Section


# What near-duplicate detection compares (loraflow.tasks.data.dedup.compared_texts): the request turns and the answers each on their
# own, system turns left out (`turns`), or the whole conversation as one text (`conversation`).
NearDupCompare = Literal["turns", "conversation"]


class CleanConfig(Section):
    normalize: bool = Field(True, description="Unicode NFKC, whitespace/control characters, mojibake (ftfy), HTML remnants, full/half width.")
    exact_dedup: bool = Field(True, description="Remove exact duplicates of the normalised conversation.")
    near_dedup: bool = Field(True, description="Remove near-duplicates with MinHash LSH.")
    near_dup_threshold: float = Field(0.85, gt=0.0, le=1.0, description="Jaccard similarity above which two records are near-duplicates.")
    near_dup_compare: NearDupCompare = Field(
        "turns", description="turns: two records are near-duplicates when their request turns and their answers each reach "
        "the threshold, system turns ignored (a shared system prompt or answer template cannot make different requests look "
        "alike); conversation: the whole conversation compared as one text.")
    minhash_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations: more is more precise and slower.")
    ngram_zh: int = Field(3, ge=1, description="Character n-gram size for Chinese text shingles.")
    ngram_en: int = Field(3, ge=1, description="Word n-gram size for English text shingles.")
    conflicts_to_review: bool = Field(True, description="Same prompt with different answers goes to review.jsonl instead of being kept or dropped.")
    min_answer_chars: int = Field(1, ge=0, description="Answers shorter than this (after normalisation) are removed as too_short.")
    max_total_chars: int = Field(20000, gt=0, description="Conversations longer than this are removed as too_long.")
    max_repeated_ngram_ratio: float = Field(0.5, gt=0.0, le=1.0, description="Answers whose share of repeated word/char 4-grams exceeds this are removed as repetitive.")
    filter_language: bool = Field(True, description="Remove records whose language is not among the task card's languages "
                                  "(only on a confident detection; unsure ones go to review, short ones in a declared script pass).")
    language_min_letters: int = Field(
        40, ge=0, description="Language filter: a text with fewer letters (Latin, Han, kana, Hangul; punctuation and digits "
        "not counted) is too short for a detector to judge: it passes when written in a declared language's script, "
        "else goes to review. Short real messages ('Cancel a transaction', '褪色很严重') are misread by every detector.")
    language_min_confidence: float = Field(
        0.99, ge=0.0, le=1.0, description="Language filter: a detection of an undeclared language below this probability "
        "is not acted on (kept when in a declared script, else review); at or above it the record is removed as wrong_language.")
    max_copy_similarity: float = Field(0.95, gt=0.0, le=1.0, description="Answers this similar to their question are removed as copies_question.")
    filter_refusals: bool = Field(True, description="Remove boilerplate refusals ('As an AI language model...', '作为一个AI...').")
