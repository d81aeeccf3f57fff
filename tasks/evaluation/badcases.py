"""Badcase analysis: the worst test cases by the success metric, each tagged with its probable cause."""
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from loraflow.schemas.results import BadcaseSummary
from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.task_card import TaskCard
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.field_metrics import per_example_metric
from loraflow.tasks.common.jsonl import iter_jsonl, read_jsonl, write_jsonl
from loraflow.tasks.evaluation.metrics import detect_language, json_field_scores, normalize_text, parse_json_object

# Causes in priority order (the first signal found is the cause) and the category each belongs to.
CAUSES = {
    "chat_template_eos": "prompt_format",
    "truncation": "prompt_format",
    "format_violation": "prompt_format",
    "wrong_language": "prompt_format",
    "label_conflict": "data",
    "near_duplicate_different_answer": "data",
    "long_input": "capability",
    "few_similar_examples": "data",
    "well_formed_but_wrong": "capability",
}
NEAR_DUPLICATE = 0.8  # character-trigram Jaccard of the user turns: same request, a few words changed
SIMILAR = 0.3  # same kind of request (shared phrasing), not the same one
FEW_SIMILAR = 2  # fewer similar training examples than this: the model rarely saw such a request
SAME_ANSWER = 0.5  # answers whose trigram Jaccard is below this are different answers
LONG_INPUT_QUANTILE = 0.9
_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "</s>", "<s>", "[INST]", "[/INST]",
            "<|assistant|>", "<|user|>", "<|system|>")
_ROLE_LINE = re.compile(r"(^|\n)\s*(user|assistant|system)\s*(\n|:)", re.IGNORECASE)


def _shingles(text: str) -> frozenset[str]:
    text = normalize_text(text)
    return frozenset(text[i : i + 3] for i in range(max(1, len(text) - 2)))


def _jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _request(messages: list[dict]) -> str:
    """The last user turn: system prompts shared by every record would make all requests look alike."""
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def _different_answers(a: str, b: str) -> bool:
    a_obj, b_obj = parse_json_object(a), parse_json_object(b)
    if a_obj is not None and b_obj is not None:
        return json_field_scores(a_obj, b_obj)["json_field_f1"] < 1.0
    return normalize_text(a) != normalize_text(b) and _jaccard(_shingles(a), _shingles(b)) < SAME_ANSWER


class _TrainIndex:
    """Training requests as trigram sets with an inverted index, for nearest-neighbour look-ups."""

    def __init__(self, train_path: str):
        if not Path(train_path).is_file():
            raise LoraflowError(f"training set {train_path} does not exist; badcase analysis needs DIR/data/train.jsonl from the data stages.")
        self.items: list[tuple[str, frozenset, str]] = []
        self.postings: dict[str, list[int]] = defaultdict(list)
        for record in iter_jsonl(train_path):
            messages = record.get("messages") or []
            answers = [m["content"] for m in messages if m.get("role") == "assistant"]
            if not answers:
                continue
            shingles = _shingles(_request(messages[: max(i for i, m in enumerate(messages) if m.get("role") == "assistant")]))
            for s in shingles:
                self.postings[s].append(len(self.items))
            self.items.append((str(record.get("id")), shingles, answers[-1]))

    def neighbours(self, request: str, min_similarity: float) -> list[tuple[float, str, str]]:
        """(similarity, train id, answer) of training examples at least min_similarity alike, most similar first."""
        query = _shingles(request)
        shared = Counter(i for s in query for i in self.postings.get(s, ()))
        found = []
        for i, common in shared.items():
            _, shingles, answer = self.items[i]
            similarity = common / (len(query) + len(shingles) - common)
            if similarity >= min_similarity:
                found.append((similarity, self.items[i][0], answer))
        return sorted(found, key=lambda t: (-t[0], t[1]))


class _Tokens:
    """Token counts with the model's tokenizer when given, else a characters-per-token estimate."""

    def __init__(self, tokenizer_path: str | None):
        self.tokenizer = None
        if tokenizer_path:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)

    def count(self, text: str, chars_per_token: float = 3.0) -> float:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text) / chars_per_token

    def markers(self) -> tuple[str, ...]:
        extra = tuple(t for t in getattr(self.tokenizer, "all_special_tokens", []) if len(t) > 2) if self.tokenizer else ()
        return _MARKERS + extra


def _signals(row: dict, index: _TrainIndex, tokens: _Tokens, long_prompt: float) -> list[tuple[str, str]]:
    """Every (cause, detail) that applies to one bad case, in CAUSES order."""
    prediction, reference = row["prediction"], row["reference"]
    gen = row.get("generation") or {}
    found = []
    marker = next((m for m in tokens.markers() if m in prediction), None)
    if marker or _ROLE_LINE.search(prediction):
        found.append(("chat_template_eos", f"the answer contains chat-template text ({marker or 'a role header'}): the model did not stop at its end-of-turn token"))
    elif not prediction.strip():
        found.append(("chat_template_eos", "the answer is empty: the model emitted its end token at once"))
    if gen.get("hit_max_new_tokens"):
        cpt = max(len(prediction), 1) / max(gen.get("new_tokens", 1), 1)
        needed = tokens.count(reference, cpt)
        if needed >= gen.get("new_tokens", 0):
            found.append(("truncation", f"cut at max_new_tokens={gen.get('new_tokens')} while the reference needs ~{needed:.0f} tokens; raise eval.max_new_tokens"))
        else:
            found.append(("chat_template_eos", f"ran to max_new_tokens={gen.get('new_tokens')} although the reference needs ~{needed:.0f}: the model never emitted its end token"))
    ref_obj = parse_json_object(reference)
    if ref_obj is not None:
        pred_obj = parse_json_object(prediction)
        if pred_obj is None:
            found.append(("format_violation", "the reference is a JSON object but the answer does not parse as one"))
        elif missing := sorted(set(ref_obj) - set(pred_obj)):
            found.append(("format_violation", f"the answer's JSON lacks field(s) {', '.join(missing)}"))
    elif len(prediction) >= 4 and detect_language(prediction) != detect_language(reference):
        found.append(("wrong_language", f"answered in {detect_language(prediction)}, the reference is in {detect_language(reference)}"))
    request = _request(row.get("messages") or [])
    near = index.neighbours(request, NEAR_DUPLICATE)
    if any(_different_answers(a, b) for i, (_, _, a) in enumerate(near) for _, _, b in near[i + 1 :]):
        found.append(("label_conflict", f"{len(near)} near-identical training examples ({', '.join(t for _, t, _ in near[:3])}) disagree on the answer"))
    conflicting = [(s, t) for s, t, a in near if _different_answers(a, reference)]
    if conflicting:
        found.append(("near_duplicate_different_answer", f"training example {conflicting[0][1]} ({conflicting[0][0]:.2f} similar) has a different answer than this reference"))
    prompt_tokens = gen.get("prompt_tokens") or tokens.count(request)
    if prompt_tokens >= long_prompt:
        found.append(("long_input", f"the prompt has {prompt_tokens:.0f} tokens, among the longest {100 - 100 * LONG_INPUT_QUANTILE:.0f}% of the test set"))
    similar = index.neighbours(request, SIMILAR)
    if len(similar) < FEW_SIMILAR:
        found.append(("few_similar_examples", f"only {len(similar)} training example(s) resemble this request (trigram Jaccard >= {SIMILAR})"))
    found.append(("well_formed_but_wrong", "well-formed, complete answer in the right language, but wrong"))
    return sorted(found, key=lambda s: list(CAUSES).index(s[0]))


def analyse_badcases(predictions_path: str, train_path: str, task_card: TaskCard, n: int, out_dir: str,
                     tokenizer_path: str | None = None) -> BadcaseSummary:
    """Tag the worst n test cases with a probable cause; write out_dir/eval/badcases.jsonl."""
    criterion = task_card.success_metric
    metric = per_example_metric(criterion.metric)
    rows = [r for r in read_jsonl(predictions_path) if metric in r.get("scores", {})]
    best = 1.0 if criterion.higher_is_better else 0.0  # every metric here lies in 0..1: a perfect answer is no badcase
    bad = [r for r in rows if r["scores"][metric] != best]
    bad.sort(key=lambda r: (r["scores"][metric] if criterion.higher_is_better else -r["scores"][metric], str(r["id"])))
    worst = bad[:n]
    index = _TrainIndex(train_path) if worst else None
    tokens = _Tokens(tokenizer_path if worst else None)
    lengths = [(r.get("generation") or {}).get("prompt_tokens") or tokens.count(_request(r.get("messages") or [])) for r in rows]
    long_prompt = max(statistics.quantiles(lengths, n=10)[-1], 1.5 * statistics.median(lengths)) if len(lengths) >= 2 else float("inf")
    out = []
    for row in worst:
        signals = _signals(row, index, tokens, long_prompt)
        cause, detail = signals[0]
        out.append({
            "id": row["id"], "messages": row.get("messages", []), "reference": row["reference"], "prediction": row["prediction"],
            "cause": cause, "category": CAUSES[cause], "detail": detail, "signals": [s for s, _ in signals[:-1]],
            "score": {metric: row["scores"][metric]}, "fields": row.get("fields"), "metadata": row.get("metadata", {}),
        })
    path = RunFolder(out_dir).eval / "badcases.jsonl"
    write_jsonl(path, out)
    return BadcaseSummary(path=str(path), n=len(out), counts=dict(Counter(r["cause"] for r in out).most_common()),
                          category_counts=dict(Counter(r["category"] for r in out).most_common()))
