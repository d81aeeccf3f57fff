"""Predictors that cost nothing, scored on the same test set as the models: what a model must clearly beat.

`majority` answers every test case with each field's most frequent training value; `stratified` draws each field's
value at random in proportion to the training values (seeded). Both see only the training split, never the test
answers. They apply to JSON answers; for free-text answers there is no trivial field predictor and none is made.
"""
import json
import random
from collections import Counter
from collections.abc import Sequence

from loraflow.tasks.evaluation.field_metrics import FieldSpec
from loraflow.tasks.evaluation.generate import load_test_records, split_record
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.evaluation.metrics import parse_json_object

BASELINES = ("majority", "stratified")


def training_value_counts(train_records: Sequence[dict], fields: Sequence[FieldSpec]) -> dict[str, Counter]:
    """How often each value of each field occurs in the training answers (values as written)."""
    counts: dict[str, Counter] = {spec.name: Counter() for spec in fields}
    for i, record in enumerate(train_records):
        _, answer = split_record(record, f"train:{i}")
        obj = parse_json_object(answer)
        if obj is None:
            continue
        for spec in fields:
            if obj.get(spec.name) is not None:
                counts[spec.name][json.dumps(obj[spec.name], ensure_ascii=False)] += 1
    return counts


def _answer(choose) -> str:
    return json.dumps({name: json.loads(value) for name, value in choose().items()}, ensure_ascii=False)


def baseline_rows(train_path: str, test_path: str, fields: Sequence[FieldSpec], max_samples: int | None = None,
                  seed: int = 0) -> dict[str, list[dict]]:
    """Prediction rows (the shape evaluation writes for a model) for each trivial predictor, keyed by its label."""
    counts = {name: c for name, c in training_value_counts(read_jsonl(train_path), fields).items() if c}
    if not counts:
        return {}
    rng = random.Random(seed)
    majority = {name: c.most_common(1)[0][0] for name, c in counts.items()}
    population = {name: (list(c), list(c.values())) for name, c in counts.items()}

    def stratified() -> dict[str, str]:
        return {name: rng.choices(values, weights)[0] for name, (values, weights) in population.items()}

    choosers = {"majority": lambda: majority, "stratified": stratified}
    rows: dict[str, list[dict]] = {label: [] for label in BASELINES}
    for i, record in enumerate(load_test_records(test_path, max_samples)):
        turns, reference = split_record(record, f"{test_path}:{i}")
        for label in BASELINES:
            rows[label].append({"id": record.get("id"), "messages": turns, "reference": reference,
                                "prediction": _answer(choosers[label]), "metadata": record.get("metadata") or {}})
    return rows
