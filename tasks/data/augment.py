"""Augment the train split: synonym, back-translation and paraphrase rewrites of the prompts, behind a quality gate."""
import logging
import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import httpx

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.augment import AugmentConfig
from loraflow.schemas.results import DataStageResult
from loraflow.tasks.data.augment_gate import REJECT_REASONS, answer_values, gate_failures
from loraflow.tasks.data.augment_rules import back_translation_by_rules, paraphrase_by_rules
from loraflow.tasks.common.chat_client import chat_complete
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import iter_jsonl, write_jsonl
from loraflow.tasks.data.quality import detect_language
from loraflow.tasks.data.synonyms import replace_synonyms

METHODS = ("synonym", "back_translation", "paraphrase")
_LANGUAGE_NAMES = {"en": "English", "zh": "Simplified Chinese"}
_CHUNK = 256  # records rewritten together (in parallel against an endpoint) before the gate runs on them
log = logging.getLogger("loraflow.augment")


def augment_records(train_path: str, config: AugmentConfig, languages: list[str], out_dir: str) -> DataStageResult:
    """Add gated rewrites of each train record to `out_dir/data/train.jsonl`; rejected ones go to `stages/`.

    Runs on the train split only. Rows of train_path that earlier augmentation produced are replaced,
    not augmented again, so running twice gives the same file.
    """
    methods = [m for m in METHODS if getattr(config, m)]
    if not methods:
        return DataStageResult(stage="augment", records=str(train_path), counts={"augmented": 0, "rejected": {}, "by_method": {}})
    _check(config)
    out_path = RunFolder(out_dir).data / "train.jsonl"
    rejected_path = RunFolder(out_dir).stages / "augment_rejected.jsonl"
    rejected: list[dict] = []
    stats = {"augmented": 0, "rejected": Counter(), "by_method": {}, "parents": 0, "previous_dropped": 0}
    total = sum(1 for _ in iter_jsonl(train_path))
    api_key = os.environ.get(config.endpoint_api_key_env) or None
    with httpx.Client(timeout=config.endpoint_timeout_s) as client, ThreadPoolExecutor(config.endpoint_concurrency) as pool:
        rewriter = _Rewriter(config, languages, client, api_key)

        def rows():
            seen = 0
            source = iter_jsonl(train_path)
            while chunk := list(islice(source, _CHUNK)):
                originals = [r for r in chunk if not (r.get("metadata") or {}).get("augment_method")]
                stats["previous_dropped"] += len(chunk) - len(originals)
                yield from originals
                yield from _augment_chunk(originals, methods, config, rewriter, pool, stats, rejected)
                seen += len(chunk)
                log.info("augment: %d/%d train records, %d augmented kept", seen, total, stats["augmented"])

        write_jsonl(out_path, rows())
    write_jsonl(rejected_path, rejected)
    counts = {
        "augmented": stats["augmented"],
        "rejected": {reason: stats["rejected"][reason] for reason in REJECT_REASONS if stats["rejected"][reason]},
        "by_method": stats["by_method"],
        "parents": stats["parents"],
        "previous_dropped": stats["previous_dropped"],
    }
    return DataStageResult(stage="augment", records=str(out_path), rejected_records=str(rejected_path), counts=counts)


def _check(config: AugmentConfig) -> None:
    """Raise once for settings that cannot work together."""
    problems = []
    if config.min_length_ratio > config.max_length_ratio:
        problems.append("augment.min_length_ratio is above augment.max_length_ratio")
    if config.min_similarity >= config.max_similarity:
        problems.append("augment.min_similarity is not below augment.max_similarity")
    if config.endpoint and not config.endpoint_model and (config.paraphrase or config.back_translation):
        problems.append("augment.endpoint is set but augment.endpoint_model is not (name the model the server serves)")
    if problems:
        raise LoraflowError("augmentation config is inconsistent: " + "; ".join(problems) + "; fix these keys in the config.")


def _augment_chunk(records, methods, config, rewriter, pool, stats, rejected) -> list[dict]:
    """Rewrite, gate and return the accepted augmented records of a chunk of train records."""
    jobs = []  # (record, method, child number, rng)
    for record in records:
        if not _user_turns(record):
            continue
        stats["parents"] += 1
        for method in methods:
            rng = random.Random(f"{config.seed}:{method}:{record['id']}")
            whole, part = divmod(config.ratio, 1)
            for k in range(int(whole) + (rng.random() < part)):
                jobs.append((record, method, k, random.Random(f"{config.seed}:{method}:{record['id']}:{k}")))
    # Endpoint calls run concurrently; rule rewrites are quick and stay in this thread.
    use_pool = rewriter.client_methods & set(methods)
    mapper = pool.map if use_pool else map
    rewrites = list(mapper(lambda job: rewriter.rewrite(*job), jobs))
    accepted, seen = [], {}
    for (record, _, k, _), (method_name, new_texts) in zip(jobs, rewrites):
        parent_turns = _user_turns(record)
        parent_text = "\n".join(record["messages"][i]["content"] for i in parent_turns)
        child_text = "\n".join(new_texts)
        child = _child(record, parent_turns, new_texts, method_name, k)
        keep = answer_values(parent_text, _answer(record))
        failures = gate_failures(parent_text, child_text, keep, config)
        siblings = seen.setdefault(record["id"], set())
        if not failures and child_text.strip() in siblings:
            failures = [{"check": "duplicate", "value": None, "threshold": None}]
        by_method = stats["by_method"].setdefault(method_name, {"accepted": 0, "rejected": 0})
        if failures:
            stats["rejected"][failures[0]["check"]] += 1
            by_method["rejected"] += 1
            rejected.append({**child, "reasons": failures})
        else:
            siblings.add(child_text.strip())
            stats["augmented"] += 1
            by_method["accepted"] += 1
            accepted.append(child)
    return accepted


def _user_turns(record: dict) -> list[int]:
    """Indices of the non-empty user turns: the parts an augmentation rewrites."""
    return [i for i, m in enumerate(record.get("messages") or []) if m.get("role") == "user" and (m.get("content") or "").strip()]


def _answer(record: dict) -> str:
    """The reference answer: the last assistant turn."""
    return next((m["content"] for m in reversed(record["messages"]) if m.get("role") == "assistant"), "")


def _child(record: dict, turns: list[int], new_texts: list[str], method: str, k: int) -> dict:
    """A canonical record with the user turns replaced; every other turn, the answer included, is kept as is."""
    messages = [dict(m) for m in record["messages"]]
    for i, text in zip(turns, new_texts):
        messages[i]["content"] = text
    metadata = {**(record.get("metadata") or {}), "parent_id": record["id"], "augment_method": method}
    child = {"id": f"{record['id']}-aug-{method}-{k}", "messages": messages, "metadata": metadata}
    if "rejected" in record:  # a preference pair: the reworded prompt keeps both answers
        child["rejected"] = record["rejected"]
    return child


class _Rewriter:
    """Rewrites the user turns of a record by one method, through the endpoint when one is configured."""

    def __init__(self, config: AugmentConfig, languages: list[str], client: httpx.Client, api_key: str | None):
        self.config, self.languages, self.client, self.api_key = config, languages, client, api_key
        self.client_methods = {"paraphrase", "back_translation"} if config.endpoint else set()

    def rewrite(self, record: dict, method: str, k: int, rng: random.Random) -> tuple[str, list[str]]:
        """The method name actually used and the rewritten user turns, in order."""
        turns = _user_turns(record)
        texts = [record["messages"][i]["content"] for i in turns]
        language = self._language(record, "\n".join(texts))
        keep = answer_values("\n".join(texts), _answer(record))
        if method == "synonym":
            return "synonym", [replace_synonyms(t, language, rng, self.config.synonym_fraction, keep) for t in texts]
        if method not in self.client_methods:
            rules = paraphrase_by_rules if method == "paraphrase" else back_translation_by_rules
            return f"{method}_rules", [rules(t, language, rng, keep) for t in texts]
        seed = rng.randrange(2**31)
        if method == "paraphrase":
            return method, [self._paraphrase(t, language, keep, seed) for t in texts]
        pivot = self._pivot(language)
        return method, [self._translate(self._translate(t, pivot, keep, seed), language, keep, seed) for t in texts]

    def _language(self, record: dict, text: str) -> str:
        """The record's language: its metadata when set, else detected."""
        language = (record.get("metadata") or {}).get("language")
        return language if isinstance(language, str) and language else detect_language(text)

    def _pivot(self, language: str) -> str:
        """The language to translate through: another task language, else English (Chinese for English)."""
        others = [lang for lang in self.languages if lang != language]
        return others[0] if others else ("zh" if language == "en" else "en")

    def _chat(self, system: str, text: str, seed: int) -> str:
        """One endpoint call (transient errors propagate to the caller's retry policy)."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        return _unwrap(chat_complete(
            self.config.endpoint, self.config.endpoint_model, messages, temperature=self.config.endpoint_temperature,
            seed=seed, timeout=self.config.endpoint_timeout_s, api_key=self.api_key, client=self.client,
        ))

    def _paraphrase(self, text: str, language: str, keep: list[str], seed: int) -> str:
        """Paraphrase text in its own language through the endpoint."""
        system = (
            f"You rewrite requests for a training data set. Paraphrase the user's message in {_name(language)}: "
            "change the wording and sentence structure but keep the meaning, the intent and every detail."
            f"{_keep_clause(keep)} Reply with the rewritten message only."
        )
        return self._chat(system, text, seed)

    def _translate(self, text: str, target: str, keep: list[str], seed: int) -> str:
        """Translate text into the target language through the endpoint."""
        system = (
            f"Translate the user's message into {_name(target)}. Keep names, numbers, codes and URLs unchanged."
            f"{_keep_clause(keep)} Reply with the translation only."
        )
        return self._chat(system, text, seed)


def _name(language: str) -> str:
    """A language's English name for a prompt."""
    return _LANGUAGE_NAMES.get(language, language)


def _keep_clause(keep: list[str]) -> str:
    """Prompt text asking the model to copy the answer's values verbatim."""
    return (" Copy these values exactly as written: " + "; ".join(f'"{v}"' for v in keep) + ".") if keep else ""


def _unwrap(text: str) -> str:
    """Strip the quotes or code fence a chat model sometimes wraps its whole answer in."""
    text = text.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text.strip("`").partition("\n")[2].strip()
    if len(text) >= 2 and (text[0], text[-1]) in {('"', '"'), ("'", "'"), ("“", "”"), ("「", "」")}:
        text = text[1:-1].strip()
    return text
