"""Low-quality filters, each with its own reason code and threshold, and fast language detection."""
import json
import re
from difflib import SequenceMatcher

from loraflow.schemas.config.clean import CleanConfig

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z']+")
_EN_STOPWORDS = frozenset(
    "the a an and or of to in on for with is are was were be been it this that these those i you he she we they "
    "my your his her our their what which who how why when where do does did not no can will would should could "
    "have has had from by at as if but so than then there here about into please".split()
)
_REFUSALS = re.compile(
    r"^\W*(?:as an ai(?: language model)?|as a language model|i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|am unable|"
    r"won't)|i cannot (?:help|assist|provide|fulfill|comply)|i can't (?:help|assist|provide|fulfill|comply)|"
    r"i(?:'m| am) (?:not able|unable) to (?:help|assist|provide)|"
    r"作为(?:一个|一名)?(?:ai|人工智能|语言模型|AI)|抱歉,?我(?:无法|不能)|对不起,?我(?:无法|不能)|我(?:无法|不能)(?:提供|回答|协助|帮助))",
    re.IGNORECASE,
)
_identifier = None


def _langid():
    global _identifier
    if _identifier is None:
        from langid.langid import LanguageIdentifier, model

        _identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    return _identifier


def detect_language(text: str) -> str:
    """ISO 639-1 language of a text: script counts decide zh/ja/ko and clear English; langid decides the rest."""
    return detect_language_confidence(text)[0]


def letter_count(text: str) -> int:
    """Letters of the scripts the detector reads (Han, kana, Hangul, Latin): punctuation, digits and marks not counted."""
    sample = text[:600]
    return sum(len(p.findall(sample)) for p in (_HAN, _KANA, _HANGUL, _LATIN))


def detect_language_confidence(text: str) -> tuple[str, float]:
    """(language, confidence 0..1): script rules and English function words are certain (1.0); langid's normalised
    probability otherwise; 0.5 for short ASCII taken as English without a detector."""
    sample = text[:600]
    han, latin = len(_HAN.findall(sample)), len(_LATIN.findall(sample))
    letters = han + latin
    if _KANA.search(sample) and len(_KANA.findall(sample)) > 0.1 * max(1, letters):
        return "ja", 1.0
    if _HANGUL.search(sample) and len(_HANGUL.findall(sample)) > 0.2 * max(1, letters):
        return "ko", 1.0
    if han and han >= 0.3 * letters:
        return "zh", 1.0
    words = _WORD.findall(sample.lower())
    # langid costs milliseconds per text; common English function words settle most English text at once.
    if len(words) >= 4 and sum(w in _EN_STOPWORDS for w in words) >= 0.2 * len(words):
        return "en", 1.0
    if latin and sample.isascii() and len(words) < 4:
        return "en", 0.5  # too short for any detector; ASCII letters are the best evidence there is
    if not letters:
        return "und", 0.0
    language, probability = _langid().classify(sample)
    return language, float(probability)


def language_text(messages: list[dict]) -> str:
    """The text whose language a record is in: its non-system turns, leaving out JSON answers (their keys and class
    labels are the answer schema's vocabulary, not the record's language: `{"category": "衣服"}` or an English label on
    a Chinese review); a record with nothing else keeps them."""
    turns = [m for m in messages if m["role"] != "system"]
    prose = [m["content"] for m in turns if not (m["role"] == "assistant" and _is_json_object(m["content"]))]
    return "\n".join(prose or [m["content"] for m in turns])


def _is_json_object(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def language_verdict(text: str, language: str, languages: list[str], config: CleanConfig) -> tuple[str, str, str]:
    """(language, verdict, detail): keep, review or remove a record detected as `language` for a task in `languages`.

    No removal on a guess: a text with fewer than clean.language_min_letters letters, or a detector confidence under
    clean.language_min_confidence, is kept when it is written in a declared language's script (Latin for en, Han for
    zh) and otherwise goes to review; only a confident detection of an undeclared language removes the record.
    """
    if language in languages:
        return language, "keep", ""
    letters = letter_count(text)
    detected, confidence = detect_language_confidence(text) if language != "und" else (language, 0.0)
    scripts = {"en": _LATIN, "zh": _HAN}
    declared_script = next((lang for lang in languages if lang in scripts and scripts[lang].search(text[:600])), None)
    detail = (f"detected {detected} (confidence {confidence:.2f}, {letters} letters), task card languages {languages}")
    if letters < config.language_min_letters or confidence < config.language_min_confidence:
        if declared_script:
            return declared_script, "keep", ""
        return language, "review", detail + f": too short or unsure to remove (clean.language_min_letters={config.language_min_letters}, "\
            f"clean.language_min_confidence={config.language_min_confidence:g})"
    return language, "remove", detail


def repeated_ngram_ratio(text: str, language: str, n: int = 4) -> float:
    """Share of word (or, for Chinese, character) n-grams that repeat an earlier one."""
    if language == "zh":
        units = text.replace(" ", "")
        total = len(units) - n + 1
        grams = {units[i:i + n] for i in range(total)} if total >= 8 else set()
    else:
        units = text.lower().split()
        total = len(units) - n + 1
        grams = {tuple(units[i:i + n]) for i in range(total)} if total >= 8 else set()
    if total < 8:  # too few n-grams to call anything repetitive
        return 0.0
    return 1.0 - len(grams) / total


def copy_similarity(question: str, answer: str, floor: float = 0.0) -> float:
    """How much the answer copies the question (difflib ratio, 0..1); a cheap upper bound when that is below floor."""
    if not question or not answer:
        return 0.0
    length_bound = 2 * min(len(question), len(answer)) / (len(question) + len(answer))
    if length_bound < floor:  # building the matcher's index is the expensive part; most pairs stop here
        return length_bound
    matcher = SequenceMatcher(None, question, answer, autojunk=False)
    if matcher.quick_ratio() < floor:
        return matcher.quick_ratio()
    return matcher.ratio()


def quality_problem(messages: list[dict], language: str, config: CleanConfig, languages: list[str]) -> tuple[str, str] | None:
    """(reason code, detail) of the first low-quality filter the record fails, or None."""
    answer = messages[-1]["content"]
    users = [m["content"] for m in messages if m["role"] == "user"]
    question = users[-1] if users else ""
    if len(answer) < config.min_answer_chars:
        return "too_short", f"answer has {len(answer)} chars < clean.min_answer_chars={config.min_answer_chars}"
    total = sum(len(m["content"]) for m in messages)
    if total > config.max_total_chars:
        return "too_long", f"conversation has {total} chars > clean.max_total_chars={config.max_total_chars}"
    if config.filter_language and languages and language not in languages:
        _, verdict, detail = language_verdict(language_text(messages), language, languages, config)
        if verdict != "keep":
            return ("wrong_language" if verdict == "remove" else "uncertain_language"), detail
    if config.filter_refusals and _REFUSALS.match(answer[:200]):
        return "refusal", f"answer starts with a boilerplate refusal: {answer[:60]!r}"
    ratio = repeated_ngram_ratio(answer, language)
    if ratio > config.max_repeated_ngram_ratio:
        return "repetitive", f"{ratio:.2f} of answer 4-grams repeat > clean.max_repeated_ngram_ratio={config.max_repeated_ngram_ratio}"
    similarity = copy_similarity(question, answer, config.max_copy_similarity)
    if similarity >= config.max_copy_similarity:
        return "copies_question", f"answer {similarity:.2f} similar to the question >= clean.max_copy_similarity={config.max_copy_similarity}"
    return None
