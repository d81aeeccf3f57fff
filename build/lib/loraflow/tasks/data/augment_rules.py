"""Offline rewrites used when no chat endpoint is configured: request-template swaps, clause reordering, synonyms."""
import random
import re

from loraflow.tasks.data.synonyms import replace_synonyms

# Instruction verbs that open an English imperative ("Extract the fields ...").
_EN_VERBS = frozenset("""
extract summarize summarise write translate list explain describe classify give tell find answer rewrite generate
create convert identify help check fix cancel show provide suggest compare calculate make draft correct parse label
tag detect determine return output format recommend update change send book reset categorize categorise rate
""".split())
_EN_PREFIX = re.compile(
    r"^(?:(?:could|can|would|will) you(?: please)?|please|kindly|i(?:'d| would) like you to|i (?:want|need) you to)\s+",
    re.IGNORECASE,
)
_EN_TEMPLATES = ("Please {core}{end}", "Could you {core}{q}", "Can you {core}{q}", "I'd like you to {core}{end}",
                 "{Core}, please{end}", "{Core}{end}")
_ZH_PREFIX = re.compile(r"^(?:请你帮我|请帮我|请你|麻烦你帮我|麻烦你|麻烦|能不能帮我|能否帮我|能否|可以帮我|你能帮我|你能|帮我|请)")
_ZH_SUFFIX = re.compile(r"(?:好吗|可以吗|行吗|吗)$")
_ZH_STARTS = ("提取", "总结", "概括", "翻译", "写", "列出", "解释", "描述", "分类", "给出", "告诉", "找出", "回答", "改写",
              "生成", "判断", "识别", "检查", "计算", "推荐", "从", "把", "将", "根据", "用")
_ZH_TEMPLATES = ("请{core}{end}", "麻烦{core}{end}", "能否{core}{q}", "你能{core}吗{q}", "帮我{core}{end}", "请帮我{core}{end}")
_SENTENCE = re.compile(r"([^.?!:。？！：\n]*)([.?!:。？！：]|\n|$)")
# Conjunctions only: "after"/"before"/"since" are mostly prepositions ("stopped after two days") at the back.
_EN_CLAUSE_FRONT = re.compile(r"^(If|When|Because|Although|After|Before) ([^,]+), (.+?)([.!?]?)$")
_EN_CLAUSE_BACK = re.compile(r"^([^,]+?) (if|when|because|although) ([^,]+?)([.!?]?)$")
_ZH_CLAUSE_FRONT = re.compile(r"^(因为|由于)([^，,]+)[，,](?:所以)?(.+?)([。！？]?)$")
_ZH_CLAUSE_BACK = re.compile(r"^([^，,]+)[，,](因为|由于)(.+?)([。！？]?)$")


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is "I" or an acronym."""
    first = text.split(" ", 1)[0]
    if first == "I" or first.isupper() and len(first) > 1 or first[:1].islower():
        return text
    return text[:1].lower() + text[1:]


def _upper_first(text: str) -> str:
    """Upper-case the first letter."""
    return text[:1].upper() + text[1:]


def swap_request_template(text: str, language: str, rng: random.Random) -> str:
    """Rephrase one request sentence ("Could you X?" <-> "Please X." <-> "X."); text unchanged when none is found."""
    options = []  # (start, end, alternatives) of each sentence that reads as a request
    for match in _SENTENCE.finditer(text):
        head, terminator = match.group(1), match.group(2)
        if head.strip():
            alternatives = _request_forms(head.strip(), terminator, language)
            if alternatives:
                lead = head[: len(head) - len(head.lstrip())]
                options.append((match.start(), match.end(), [lead + a for a in alternatives]))
    if not options:
        return text
    start, end, alternatives = rng.choice(options)
    return text[:start] + rng.choice(alternatives) + text[end:]


def _request_forms(head: str, terminator: str, language: str) -> list[str]:
    """Other phrasings of one request sentence (with its terminator); empty when it is no request."""
    if language == "zh":
        core = _ZH_SUFFIX.sub("", _ZH_PREFIX.sub("", head))
        if not core or core == head and not head.startswith(_ZH_STARTS):
            return []
        end, q = {"：": ("：", "："), ":": ("：", "："), "\n": ("\n", "\n"), "！": ("！", "？")}.get(terminator, ("。", "？"))
        forms = [t.format(core=core, end=end, q=q) for t in _ZH_TEMPLATES]
    else:
        core = re.sub(r",? please$", "", _EN_PREFIX.sub("", head), flags=re.IGNORECASE)
        if not core or core == head and core.split(" ", 1)[0].lower() not in _EN_VERBS:
            return []
        core = _lower_first(core)
        end, q = {":": (":", ":"), "\n": ("\n", "?\n"), "!": ("!", "?")}.get(terminator, (".", "?"))
        forms = [t.format(core=core, Core=_upper_first(core), end=end, q=q) for t in _EN_TEMPLATES]
    return [f for f in dict.fromkeys(forms) if f != head + terminator]


def reorder_clauses(text: str, language: str) -> str:
    """Move a leading subordinate clause to the back of its sentence, or a trailing one to the front."""
    # Split at line breaks and colons too: a clause never moves across "...as JSON:\n<ticket>".
    if language == "zh":
        sentences = re.split(r"(?<=[。！？：:\n])", text)
    else:
        sentences = re.split(r"(?<=[.!?:\n])(\s*)", text)
    out = []
    for sentence in sentences:
        out.append(_reorder_sentence(sentence, language) if sentence.strip() else sentence)
    return "".join(out)


def _reorder_sentence(sentence: str, language: str) -> str:
    """One sentence with its subordinate clause moved, or unchanged."""
    if language == "zh":
        if m := _ZH_CLAUSE_FRONT.match(sentence):
            return f"{m.group(3)}，{m.group(1)}{m.group(2)}{m.group(4)}"
        if m := _ZH_CLAUSE_BACK.match(sentence):
            return f"{m.group(2)}{m.group(3)}，所以{m.group(1)}{m.group(4)}"
        return sentence
    if m := _EN_CLAUSE_FRONT.match(sentence):
        return f"{_upper_first(m.group(3))} {m.group(1).lower()} {m.group(2)}{m.group(4)}"
    if m := _EN_CLAUSE_BACK.match(sentence):
        return f"{m.group(2).capitalize()} {m.group(3)}, {_lower_first(m.group(1))}{m.group(4)}"
    return sentence


def paraphrase_by_rules(text: str, language: str, rng: random.Random, keep: list[str]) -> str:
    """Offline paraphrase: a request-template swap plus a few synonym swaps."""
    rewritten = swap_request_template(text, language, rng)
    return replace_synonyms(rewritten, language, rng, fraction=0.1, keep=keep)


def back_translation_by_rules(text: str, language: str, rng: random.Random, keep: list[str]) -> str:
    """Offline stand-in for back-translation: clause reordering and heavier synonym swaps, as a translator would."""
    rewritten = reorder_clauses(text, language)
    if rewritten == text or rng.random() < 0.5:
        rewritten = swap_request_template(rewritten, language, rng)
    return replace_synonyms(rewritten, language, rng, fraction=0.25, keep=keep)
