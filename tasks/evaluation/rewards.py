"""GRPO's rewards from the task card, no code needed: JSON validity, each declared field right against the record's
reference, no text outside the JSON, the rejected answer scoring low; plus a `module:function` callable and the LLM judge.

Each reward is a function in trl's reward signature, `f(prompts, completions, **columns) -> list[float | None]`, named
after its component (trl logs `rewards/<name>/mean`); None means "does not apply to this row" (no reference, no
rejected answer) and is left out of that component's mean. Field correctness is evaluation's own comparison
(field_metrics.example_field_scores: categorical exact class, text normalised match), so what GRPO is rewarded for is
what the gate measures.
"""
import importlib
import os
from collections.abc import Callable, Sequence

from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.schemas.config.judge import JudgeConfig
from loraflow.tasks.evaluation.field_metrics import FieldSpec, example_field_scores, field_value, normalize_text, resolve_fields
from loraflow.tasks.evaluation.metrics import parse_json_object

RewardFunction = Callable[..., list[float | None]]


def completion_text(completion) -> str:
    """A completion's text: trl passes conversational completions as a list of assistant messages."""
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def _named(name: str, function: RewardFunction) -> RewardFunction:
    function.__name__ = name  # trl names the component after the function: rewards/<name>/mean
    return function


def json_valid(completions, **_) -> list[float | None]:
    """1 when the completion parses as a JSON object (bare or fenced, as evaluation reads answers), else 0."""
    return [float(parse_json_object(completion_text(c)) is not None) for c in completions]


def no_extra_text(completions, **_) -> list[float | None]:
    """1 when the completion is the JSON object and nothing else (no prose, no code fence), else 0."""
    scores = []
    for completion in completions:
        text = completion_text(completion).strip()
        scores.append(float(text.startswith("{") and text.endswith("}") and parse_json_object(text) is not None))
    return scores


def field_reward(spec: FieldSpec) -> RewardFunction:
    """1 when the completion's field equals the reference's (categorical: the class; text: normalised match), else 0."""
    stat = f"field.{spec.name}." + ("accuracy" if spec.kind == "categorical" else "normalized_match")

    def reward(completions, reference=None, **_) -> list[float | None]:
        scores = []
        for completion, ref_text in zip(completions, reference or [None] * len(completions)):
            ref = parse_json_object(ref_text) if ref_text else None
            if ref is None or spec.name not in ref:
                scores.append(None)  # nothing to be right against
                continue
            _, score = example_field_scores(parse_json_object(completion_text(completion)), ref, [spec])
            scores.append(score[stat])
        return scores

    return _named(f"field_{spec.name}", reward)


def rejected_reward(specs: Sequence[FieldSpec]) -> RewardFunction:
    """Minus the share of the rejected answer's wrong fields the completion repeats (all fields without a reference).

    A rejected answer that is not JSON scores -1 when the completion repeats it word for word (normalised).
    """
    def reward(completions, rejected=None, reference=None, **_) -> list[float | None]:
        scores = []
        references = reference or [None] * len(completions)
        for completion, bad_text, ref_text in zip(completions, rejected or [None] * len(completions), references):
            if not bad_text:
                scores.append(None)
                continue
            text, bad = completion_text(completion), parse_json_object(bad_text)
            if bad is None:
                scores.append(-float(normalize_text(text) == normalize_text(bad_text)))
                continue
            ref = parse_json_object(ref_text) if ref_text else None
            names = [s.name for s in specs] or list(bad)
            wrong = [n for n in names if ref is None or field_value(bad, n) != field_value(ref, n)]
            if not wrong:
                scores.append(None)  # the rejected answer is right in every field: nothing to push away from
                continue
            prediction = parse_json_object(text)
            scores.append(-sum(field_value(prediction, n) == field_value(bad, n) for n in wrong) / len(wrong))
        return scores

    return _named("rejected", reward)


def judge_reward(judge: JudgeConfig) -> RewardFunction:
    """The LLM judge's accuracy score (1-5) of each completion against the reference, as (score - 1) / 4."""
    from loraflow.tasks.evaluation.llm_judge import judge_cases

    def reward(prompts, completions, reference=None, **_) -> list[float | None]:
        cases = [{"id": str(i), "messages": list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}],
                  "reference": ref or "", "prediction": completion_text(c)}
                 for i, (prompt, c, ref) in enumerate(zip(prompts, completions, reference or [None] * len(completions)))]
        rows = judge_cases(cases, judge.base_url, judge.model, os.environ.get(judge.api_key_env), judge.timeout_s,
                           judge.concurrency)
        return [None if row.get("accuracy") is None else (row["accuracy"] - 1) / 4 for row in rows]

    return _named("judge", reward)


def import_reward_function(path: str) -> RewardFunction:
    """The callable named `module:function` (validated when the config was read)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def reward_functions(declared_fields: dict, references: Sequence[str], grpo: GrpoConfig,
                     judge: JudgeConfig | None = None, with_judge: bool = True) -> tuple[list[RewardFunction], list[float]]:
    """The reward components in force (weight > 0) and their weights, in trl's order.

    Args:
        declared_fields: task_card.fields (empty: inferred from the references, as evaluation does).
        references: reference answers of the training records, to infer the fields when none are declared.
        grpo: train.grpo (weights, per-field weights, the extra callable).
        judge: the judge section; its endpoint scores completions when train.grpo.weights.judge > 0.
        with_judge: False leaves the judge out (held-out scoring of greedy answers).
    """
    weights = grpo.weights
    specs = resolve_fields(declared_fields, [parse_json_object(r) if r else None for r in references])
    candidates: list[tuple[RewardFunction, float]] = [(json_valid, weights.json_valid)]
    candidates += [(field_reward(s), grpo.field_weights.get(s.name, weights.fields)) for s in specs]
    candidates += [(no_extra_text, weights.no_extra_text), (rejected_reward(specs), weights.rejected)]
    if grpo.reward_function:
        candidates.append((import_reward_function(grpo.reward_function), weights.function))
    if with_judge and judge is not None and weights.judge > 0:
        candidates.append((judge_reward(judge), weights.judge))
    chosen = [(f, w) for f, w in candidates if w > 0]
    return [f for f, _ in chosen], [w for _, w in chosen]


def reward_names(functions: Sequence[RewardFunction]) -> list[str]:
    """The component names trl logs the functions under."""
    return [getattr(f, "__name__", type(f).__name__) for f in functions]
