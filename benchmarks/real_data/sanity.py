"""Quick check of prepared real data sets: size, classes, token lengths with SmolLM2's tokenizer, TF-IDF + LR per field.

    nice -n 19 .venv/bin/python benchmarks/real_data/sanity.py runs/real/*/data.jsonl > benchmarks/results/real_data_sanity.md

Token lengths are of the whole record (system prompt, text, answer) through the model's chat template, counted as the
validator counts them (loraflow.tasks.data.validate.count_tokens). The classifier is TF-IDF (char 1-4 + word 1-2
n-grams, sublinear tf) + logistic regression (scikit-learn defaults, max_iter 2000) on a seeded, stratified 80/20 split
of the records (stratified by the field with the most classes); it is this check's own split, not a pipeline run's.
"""
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline, make_union

from loraflow.tasks.common.base_model import SMOLLM2, resolve_base_model
from loraflow.tasks.common.settings import loraflow_home
from loraflow.tasks.data.validate import count_tokens, load_tokenizer

SEED = 0


def classical(texts: list[str], labels: list[str], train_idx, test_idx) -> tuple[float, float]:
    model = make_pipeline(
        make_union(TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True),
                   TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
        LogisticRegression(max_iter=2000))
    model.fit([texts[i] for i in train_idx], [labels[i] for i in train_idx])
    pred = model.predict([texts[i] for i in test_idx])
    gold = [labels[i] for i in test_idx]
    return accuracy_score(gold, pred), f1_score(gold, pred, average="macro")


def check(path: Path, tokenizer) -> list[str]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    answers = [json.loads(r["messages"][-1]["content"]) for r in records]
    texts = [r["messages"][1]["content"] for r in records]
    fields = list(answers[0])
    counts = {f: Counter(a[f] for a in answers) for f in fields}
    tokens = np.array(count_tokens(tokenizer, [r["messages"] for r in records]))
    chars = np.array([len(t) for t in texts])
    finest = max(fields, key=lambda f: len(counts[f]))
    train_idx, test_idx = train_test_split(np.arange(len(records)), test_size=0.2, random_state=SEED,
                                           stratify=[a[finest] for a in answers])
    lines = [f"### {path.parent.name}", "",
             f"records {len(records)}; language {Counter(r['metadata']['language'] for r in records)}; "
             f"text chars p50 {np.percentile(chars, 50):.0f}, max {chars.max()}; "
             f"tokens (chat template, system prompt and answer included) p50 {np.percentile(tokens, 50):.0f}, "
             f"p95 {np.percentile(tokens, 95):.0f}, p99.5 {np.percentile(tokens, 99.5):.0f}, max {tokens.max()}; "
             f"records over 160 tokens {int((tokens > 160).sum())}", "",
             "| field | classes | per class (min-max) | TF-IDF + LR accuracy | macro-F1 | test n |",
             "| --- | --- | --- | --- | --- | --- |"]
    for field in fields:
        labels = [a[field] for a in answers]
        acc, f1 = classical(texts, labels, train_idx, test_idx)
        per = counts[field].values()
        lines.append(f"| {field} | {len(counts[field])} | {min(per)}-{max(per)} | {acc:.3f} | {f1:.3f} | {len(test_idx)} |")
    return lines + [""]


def main(paths: list[str]) -> None:
    # The pipeline's model cache ($LORAFLOW_HOME/models): SmolLM2's GGUF is converted once and reused.
    tokenizer = load_tokenizer(resolve_base_model(SMOLLM2, None, None, str(loraflow_home() / "models")))
    for path in paths:
        print("\n".join(check(Path(path), tokenizer)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
