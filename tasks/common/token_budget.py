"""Token counts that never tokenize more text than a limit needs: a 40 MB record or prompt is known to be too long from
its length in characters, without holding the interpreter (and every other thread) for a minute while it is tokenized.

No token of a vocabulary spans more characters than its longest entry (byte-level vocabularies spell each byte as one
character, so this bounds the characters of any text a token covers), so text longer than (limit + 1) times that
length has more than `limit` tokens; tokenizing just that much of it gives a count above the limit.
"""
import weakref

_LONGEST: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def longest_token_chars(tokenizer) -> int:
    """Characters in the longest entry of the tokenizer's vocabulary (added and special tokens included)."""
    try:
        return _LONGEST[tokenizer]
    except (KeyError, TypeError):
        pass
    longest = max((len(token) for token in tokenizer.get_vocab()), default=1)
    try:
        _LONGEST[tokenizer] = longest
    except TypeError:  # not weak-referenceable: compute again next time
        pass
    return longest


def char_limit(tokenizer, max_tokens: int) -> int:
    """Text longer than this many characters certainly has more than max_tokens tokens."""
    return (max_tokens + 1) * max(longest_token_chars(tokenizer), 1)


def capped_token_counts(tokenizer, texts: list[str], max_tokens: int | None) -> list[int]:
    """Tokens in each text (no special tokens added); a text too long for max_tokens by its length alone is counted
    only as far as its first char_limit characters, which is already more than max_tokens."""
    if not max_tokens:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
    cap = char_limit(tokenizer, max_tokens)
    clipped = [text[:cap] for text in texts]
    return [len(ids) for ids in tokenizer(clipped, add_special_tokens=False)["input_ids"]] if texts else []
