"""Predictors that cost (next to) nothing, scored on the same test set as the models: what a model must clearly beat.

`classical` answers each categorical field with TF-IDF + logistic regression fitted on the training split's request
texts (loraflow.tasks.evaluation.classical); it predicts no free-text field. `majority` answers every test case with
each field's most frequent training value; `stratified` draws each field's value at random in proportion to the
training values (seeded). All see only the training split, never the test answers. They apply to JSON answers; for
free-text answers there is no field predictor and none is made.
"""
import json
import random
from collections import Counter
from collections.abc import Sequence

from loraflow.tasks.evaluation.classical import fit_predict, request_text
from loraflow.tasks.evaluation.field_metrics import FieldSpec
from loraflow.tasks.evaluation.generate import load_test_records, split_record
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.evaluation.metrics import parse_json_object

BASELINES = ("classical", "majority", "stratified")  # the order they are shown in, the strongest first


def training_values(train_records: Sequence[dict], fields: Sequence[FieldSpec]) -> dict[str, list[tuple[str, str]]]:
    """Each field's (request text, value as written in JSON) pairs over the training answers that have the field."""
    values: dict[str, list[tuple[str, str]]] = {spec.name: [] for spec in fields}
    for i, record in enumerate(train_records):
        turns, answer = split_record(record, f"train:{i}")
        obj = parse_json_object(answer)
        if obj is None:
            continue
        for spec in fields:
            if obj.get(spec.name) is not None:
                values[spec.name].append((request_text(turns), json.dumps(obj[spec.name], ensure_ascii=False)))
    return values


def training_value_counts(train_records: Sequence[dict], fields: Sequence[FieldSpec]) -> dict[str, Counter]:
    """How often each value of each field occurs in the training answers (values as written)."""
    return {name: Counter(value for _, value in pairs) for name, pairs in training_values(train_records, fields).items()}


def classical_answers(train_values: dict[str, list[tuple[str, str]]], test_texts: Sequence[str],
                      fields: Sequence[FieldSpec], seed: int = 0) -> list[dict[str, str]]:
    """Per test text, each categorical field's value as predicted by TF-IDF + logistic regression (JSON-encoded values)."""
    answers: list[dict[str, str]] = [{} for _ in test_texts]
    for spec in fields:
        pairs = train_values.get(spec.name) or []
        if spec.kind != "categorical" or not pairs:
            continue
        texts, labels = zip(*pairs, strict=True)
        for answer, value in zip(answers, fit_predict(texts, labels, test_texts, seed), strict=True):
            answer[spec.name] = value
    return answers


def _answer(choose) -> str:
    return json.dumps({name: json.loads(value) for name, value in choose().items()}, ensure_ascii=False)


def baseline_rows(train_path: str, test_path: str, fields: Sequence[FieldSpec], max_samples: int | None = None,
                  seed: int = 0) -> dict[str, list[dict]]:
    """Prediction rows (the shape evaluation writes for a model) for each baseline predictor, keyed by its label
    (`classical` only where a categorical field has training values; its answers hold the categorical fields only)."""
    values = training_values(read_jsonl(train_path), fields)
    counts = {name: Counter(value for _, value in pairs) for name, pairs in values.items() if pairs}
    if not counts:
        return {}
    tests = [(record, *split_record(record, f"{test_path}:{i}")) for i, record in enumerate(load_test_records(test_path, max_samples))]
    classical = iter(classical_answers(values, [request_text(turns) for _, turns, _ in tests], fields, seed))
    rng = random.Random(seed)
    majority = {name: c.most_common(1)[0][0] for name, c in counts.items()}
    population = {name: (list(c), list(c.values())) for name, c in counts.items()}

    def stratified() -> dict[str, str]:
        return {name: rng.choices(choices, weights)[0] for name, (choices, weights) in population.items()}

    choosers = {"classical": lambda: next(classical), "majority": lambda: majority, "stratified": stratified}
    categorical = any(spec.kind == "categorical" and values[spec.name] for spec in fields)
    rows: dict[str, list[dict]] = {label: [] for label in BASELINES if label != "classical" or categorical}
    for record, turns, reference in tests:
        for label in rows:
            rows[label].append({"id": record.get("id"), "messages": turns, "reference": reference,
                                "prediction": _answer(choosers[label]), "metadata": record.get("metadata") or {}})
    return rows
