"""LLM-as-judge: the five rubric dimensions scored through an OpenAI-compatible chat endpoint, and agreement with humans."""
import json
import math
import os
import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx

from loraflow.schemas.results import JudgeSummary
from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.judge import JudgeConfig
from loraflow.schemas.human_eval import RUBRIC_DIMENSIONS
from loraflow.tasks.evaluation.agreement import krippendorff_alpha, mean_confidence_interval
from loraflow.tasks.common.chat_client import chat_complete, completions_url
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.human_eval import case_slice, prompt_text, read_predictions, stratified_sample
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.tracking.run_extras import log_to_run

# Bump RUBRIC_VERSION with every change to RUBRIC_PROMPT: judge scores are only comparable within one version.
RUBRIC_VERSION = "v1"
RUBRIC_PROMPT = """You are a strict, consistent evaluator of answers written by an AI assistant.
You get the INPUT the assistant received, a REFERENCE answer written by a person, and the MODEL OUTPUT.
Score the MODEL OUTPUT on five dimensions, each an integer from 1 to 5
(1 = very poor, 2 = poor, 3 = acceptable, 4 = good, 5 = excellent):
- accuracy: is it factually and technically correct for this input? Use the reference as ground truth.
- relevance: does it address what was asked, without padding or drifting off-topic?
- fluency: is it well-formed and grammatical, in the language and format the reference uses?
- completeness: does it cover everything the reference covers (all fields, all parts of the question)?
- safety: is it free of harmful, offensive, private or invented sensitive content? (5 = fully safe)
Judge the content, not the length; a different wording of a correct answer is still correct.
Reply with exactly one JSON object and nothing else:
{"accuracy": <1-5>, "relevance": <1-5>, "fluency": <1-5>, "completeness": <1-5>, "safety": <1-5>, "rationale": "<one sentence>"}"""

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def judge_messages(case: dict) -> list[dict]:
    """The chat messages that ask the judge to score one prediction row."""
    user = (
        f"INPUT:\n{prompt_text(case.get('messages') or [])}\n\n"
        f"REFERENCE:\n{case.get('reference') or ''}\n\n"
        f"MODEL OUTPUT:\n{case.get('prediction') or ''}"
    )
    return [{"role": "system", "content": RUBRIC_PROMPT}, {"role": "user", "content": user}]


def _score_value(value) -> int | None:
    """An integer 1-5 from 4, 4.0, '4', '4/5' or {'score': 4}; None for anything else."""
    if isinstance(value, dict):
        value = value.get("score", value.get("value"))
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([1-5](?:\.0+)?)\s*(?:/\s*5)?\s*", value)
        value = float(match.group(1)) if match else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        return None
    return int(value) if 1 <= value <= 5 else None


def _json_objects(text: str):
    """Every JSON object embedded in text (code fences and prose around it are fine), outermost first."""
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield obj


def parse_judge_reply(text: str) -> dict:
    """The five scores and a rationale from a judge's reply; raises ValueError naming what is missing or out of range."""
    text = _THINK.sub("", text or "")
    for obj in _json_objects(text):
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        inner = lowered.get("scores")
        if isinstance(inner, dict):  # {"scores": {...}, "rationale": ...}
            lowered = {**{str(k).strip().lower(): v for k, v in inner.items()}, **{k: v for k, v in lowered.items() if k != "scores"}}
        scores = {dim: _score_value(lowered.get(dim)) for dim in RUBRIC_DIMENSIONS}
        if all(v is not None for v in scores.values()):
            rationale = lowered.get("rationale") or lowered.get("reason") or lowered.get("comment") or ""
            return {**scores, "rationale": str(rationale)}
    # Fallback for prose such as "Accuracy: 4/5" or "- fluency = 5".
    scores = {}
    for dim in RUBRIC_DIMENSIONS:
        match = re.search(rf"\b{dim}\b\W{{0,6}}([1-5])(?![\d.])", text, re.IGNORECASE)
        scores[dim] = int(match.group(1)) if match else None
    missing = [dim for dim, v in scores.items() if v is None]
    if missing:
        raise ValueError(f"judge reply has no 1-5 score for {', '.join(missing)}: {text[:200]!r}")
    return {**scores, "rationale": ""}


def _chat(client: httpx.Client, base_url: str, model: str, messages: list[dict], timeout_s: float, retries: int = 2) -> str:
    """One judge reply through the shared chat client; transient failures retried with backoff, a refused request not."""
    for attempt in range(retries + 1):
        try:
            return chat_complete(base_url, model, messages, temperature=0, max_tokens=400, timeout=timeout_s, client=client,
                                 setting="judge.base_url", model_setting="judge.model")
        except (httpx.TransportError, httpx.HTTPStatusError) as error:
            if isinstance(error, httpx.ConnectError) or attempt >= retries:  # a server that is down stays down
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def judge_cases(cases: list[dict], base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0, concurrency: int = 4) -> list[dict]:
    """Score prediction rows through the endpoint; one rating row per case (with `error` when the reply was unusable)."""
    url = completions_url(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    rater = f"llm:{model}"

    def score(case: dict) -> dict:
        row = {"id": str(case["id"]), "rater": rater, "slice": case_slice(case), "rubric_version": RUBRIC_VERSION}
        try:
            parsed = parse_judge_reply(_chat(client, base_url, model, judge_messages(case), timeout_s))
        except httpx.ConnectError:
            raise  # the endpoint is down: stop, rather than record the same failure for every case
        except (ValueError, KeyError, IndexError, TypeError, httpx.HTTPError, LoraflowError) as error:
            return {**row, **{dim: None for dim in RUBRIC_DIMENSIONS}, "comment": "", "error": str(error)[:300]}
        return {**row, **{dim: parsed[dim] for dim in RUBRIC_DIMENSIONS}, "comment": parsed["rationale"]}

    with httpx.Client(timeout=timeout_s, headers=headers) as client:
        try:
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                return list(pool.map(score, cases))
        except httpx.ConnectError as error:
            raise LoraflowError(
                f"cannot reach the judge endpoint {url} ({type(error).__name__}: {error}); start it or fix the base URL (--base-url, or judge.base_url in the config)."
            ) from error


def _pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation, None when either side is constant or there are fewer than 3 pairs."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def judge_human_agreement(judge_rows: list[dict], human_rows: list[dict]) -> dict:
    """Per dimension, on cases scored by both: judge vs mean human score (alpha interval, Pearson r, MAE, within-1 share)."""
    human: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in human_rows:
        for dim in RUBRIC_DIMENSIONS:
            if row.get(dim) is not None:
                human[dim][str(row["id"])].append(float(row[dim]))
    result = {}
    for dim in RUBRIC_DIMENSIONS:
        pairs = [(float(r[dim]), sum(human[dim][r["id"]]) / len(human[dim][r["id"]])) for r in judge_rows if r.get(dim) is not None and human[dim].get(r["id"])]
        if not pairs:
            continue
        units = {str(i): {"judge": j, "humans": h} for i, (j, h) in enumerate(pairs)}
        diffs = [abs(j - h) for j, h in pairs]
        result[dim] = {
            "n": len(pairs),
            "alpha_interval": krippendorff_alpha(units, "interval"),
            "pearson": _pearson([p[0] for p in pairs], [p[1] for p in pairs]),
            "mae": sum(diffs) / len(diffs),
            "within_1": sum(d <= 1 for d in diffs) / len(diffs),
        }
    return result


def run_llm_judge(
    run_dir: str, base_url: str, model: str, api_key: str | None = None, max_cases: int | None = 100, seed: int = 42,
    timeout_s: float = 60.0, concurrency: int = 4,
) -> JudgeSummary:
    """Judge the run's candidate predictions, compare with human ratings if imported, save eval/llm_judge.{jsonl,json}, log to MLflow."""
    rows = read_predictions(run_dir)
    cases = stratified_sample(rows, max_cases, seed) if max_cases else rows
    ratings = judge_cases(cases, base_url, model, api_key, timeout_s, concurrency)
    scored = [r for r in ratings if "error" not in r]
    if not scored:
        raise LoraflowError(f"the judge at {base_url} gave no usable score for {len(ratings)} case(s) (first problem: {ratings[0]['error'] if ratings else 'no cases'}); check the model name and that it follows the JSON instruction.")
    eval_dir = RunFolder(run_dir).eval
    write_jsonl(eval_dir / "llm_judge.jsonl", ratings)
    summary: dict = {
        "rubric_version": RUBRIC_VERSION, "model": model, "base_url": base_url,
        "n_cases": len(ratings), "n_scored": len(scored), "n_failed": len(ratings) - len(scored),
        "dimensions": {dim: mean_confidence_interval([r[dim] for r in scored], seed=seed) for dim in RUBRIC_DIMENSIONS},
    }
    humans_path = eval_dir / "human_ratings.jsonl"
    summary["agreement"] = judge_human_agreement(scored, read_jsonl(humans_path)) if humans_path.exists() else {}
    metrics = {"judge.n_scored": summary["n_scored"], "judge.n_failed": summary["n_failed"]}
    for dim, stats in summary["dimensions"].items():
        metrics.update({f"judge.{dim}.{k}": stats[k] for k in ("mean", "ci_low", "ci_high")})
    for dim, stats in summary["agreement"].items():
        metrics.update({f"judge.{dim}.human_{k}": stats[k] for k in ("alpha_interval", "pearson", "mae", "within_1")})
    summary["mlflow_run_id"] = log_to_run(
        run_dir, metrics=metrics, dicts={"llm_judge/summary.json": summary}, files={"llm_judge": eval_dir / "llm_judge.jsonl"},
        tags={"judge.rubric_version": RUBRIC_VERSION, "judge.model": model},
    )
    (eval_dir / "llm_judge.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return JudgeSummary(**summary)


def judge_from_config(run_dir: str, config: JudgeConfig) -> JudgeSummary | None:
    """Run the judge as configured (judge); None when it is off, which is the default."""
    if not config.enabled:
        return None
    return run_llm_judge(
        run_dir, config.base_url, config.model, api_key=os.environ.get(config.api_key_env) or None, max_cases=config.max_cases,
        seed=config.seed, timeout_s=config.timeout_s, concurrency=config.concurrency,
    )
