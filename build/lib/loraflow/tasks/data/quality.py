"""Low-quality filters, each with its own reason code and threshold, and fast language detection."""
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

        _identifier = LanguageIdentifier.from_modelstring(model, norm_probs=False)
    return _identifier


def detect_language(text: str) -> str:
    """ISO 639-1 language of a text: script counts decide zh/ja/ko and clear English; langid decides the rest."""
    sample = text[:600]
    han, latin = len(_HAN.findall(sample)), len(_LATIN.findall(sample))
    letters = han + latin
    if _KANA.search(sample) and len(_KANA.findall(sample)) > 0.1 * max(1, letters):
        return "ja"
    if _HANGUL.search(sample) and len(_HANGUL.findall(sample)) > 0.2 * max(1, letters):
        return "ko"
    if han and han >= 0.3 * letters:
        return "zh"
    words = _WORD.findall(sample.lower())
    # langid costs milliseconds per text; common English function words settle most English text at once.
    if len(words) >= 4 and sum(w in _EN_STOPWORDS for w in words) >= 0.2 * len(words):
        return "en"
    if latin and sample.isascii() and len(words) < 4:
        return "en"  # too short for any detector; ASCII letters are the best evidence there is
    if not letters:
        return "und"
    return _langid().classify(sample)[0]


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
        return "wrong_language", f"detected {language}, task card languages {languages}"
    if config.filter_refusals and _REFUSALS.match(answer[:200]):
        return "refusal", f"answer starts with a boilerplate refusal: {answer[:60]!r}"
    ratio = repeated_ngram_ratio(answer, language)
    if ratio > config.max_repeated_ngram_ratio:
        return "repetitive", f"{ratio:.2f} of answer 4-grams repeat > clean.max_repeated_ngram_ratio={config.max_repeated_ngram_ratio}"
    similarity = copy_similarity(question, answer, config.max_copy_similarity)
    if similarity >= config.max_copy_similarity:
        return "copies_question", f"answer {similarity:.2f} similar to the question >= clean.max_copy_similarity={config.max_copy_similarity}"
    return None
