"""Words as the knowledge base compares them: lower case, light stemming, one spelling.

Search, focus matching and the faithfulness gate all use these functions, so a word counts as
"the same" in the same way everywhere (headaches = headache, anaemia = anemia).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

# Words that carry no topic: question scaffolding and filler. Medical words are never here.
STOPWORDS = frozenset(
    """
    a about after again all am an and any are as at be been before being but by can could did do
    does doing for from get gets getting had has have having he her him his how i if in into is
    it its just know me my myself no not of off on once or other our out over own please really
    she should so some such tell than that the their them then there these they this those to too
    up very was we were what when where which who why will with would you your yours im ive id dont
    cant whats hi hello thanks thank much many lot also one way good bad
    """.split()
)

_WORD = re.compile(r"[a-z0-9]+")
# British spellings meet American ones (anaemia/anemia, oesophagus/esophagus, diarrhoea/diarrhea).
_DIGRAPH = re.compile(r"(?<=[a-z])(?:ae|oe)(?=[a-z])")
_SUFFIXES = ("ing", "es", "s")
# Endings where a final s is not a plural: polyposis, adenomatous, virus, illness.
_NOT_PLURAL = ("sis", "ss", "us", "is")


@lru_cache(maxsize=500_000)  # a vocabulary, not a stream: indexing 15k passages calls this 3M times
def stem(word: str) -> str:
    word = _DIGRAPH.sub("e", word)
    # A light stemmer: plural and -ing forms meet their base word (headaches → headache).
    if word.endswith(_NOT_PLURAL):
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def normal_words(text: str) -> list[str]:
    """Every word, stemmed, stopwords kept: for phrase matching."""
    words = _WORD.findall(text.lower().replace("'", "").replace("’", ""))
    return [word if word in STOPWORDS else stem(word) for word in words]


def content(words: list[str]) -> list[str]:
    """The content words of already normalised ``words``."""
    return [w for w in words if w not in STOPWORDS and (len(w) >= 2 or w.isdigit())]  # "type 1" vs "type 2"


def tokens(text: str) -> list[str]:
    """Content words, stemmed: for ranking and support checks."""
    return content(normal_words(text))


def phrase(text: str) -> str:
    """A phrase in its comparable form: stemmed words joined by single spaces."""
    return " ".join(normal_words(text))


def one_letter_less(word: str) -> set[str]:
    """The word and every way of dropping one letter from it: two words share one of these when
    they are one edit apart (a letter added, dropped or changed; symmetric-delete spelling)."""
    return {word} | {word[:index] + word[index + 1 :] for index in range(len(word))}


# --- words run together -------------------------------------------------------------------------

# MedQuAD lost its dashes: "community-acquired pneumoniathe most common type of pneumoniaare
# treated at home". A rare word that is a common word followed by one of these is two words.
GLUE_TAILS = frozenset(
    """
    a an as at by in is of on or to the are and which that such including for with can may you these
    this was were has have from but usually called also its their who when where because often
    especially like during after before without within into
    """.split()
)
GLUE_MIN_COUNT = 20  # how often both words must occur apart in the texts for the split to be trusted
GLUE_RARE = 2  # a word seen more often than this is a word, not two run together
_GLUE_WORD = re.compile(r"[a-z]+")


def glued_words(texts: Iterable[str]) -> dict[str, int]:
    """Words that two common words run together make in ``texts``, each with where it splits:
    {"pneumoniathe": 9}. Needs a large collection (a whole source), where "pneumonia" and "the"
    are common; in a handful of leaflets nothing is common enough and nothing is found."""
    counts = Counter(_GLUE_WORD.findall("\n".join(texts).lower()))
    found = {}
    for word, count in counts.items():
        if count > GLUE_RARE or len(word) < 7:
            continue
        for split in range(len(word) - 1, 3, -1):
            head, tail = word[:split], word[split:]
            if tail not in GLUE_TAILS or counts.get(head, 0) < GLUE_MIN_COUNT:
                continue
            if len(tail) <= 2 and len(head) < 6:
                continue  # "thereof", "reactor": short endings make real words
            if (tail == "is" and head.endswith(("al", "ar", "an", "it"))) or (
                tail == "or" and head.endswith(("t", "s"))
            ):
                continue  # "spiralis", "multilocularis"; "predictor", "processor"
            found[word] = split
            break
    return found


def unglue(text: str, glued: dict[str, int]) -> str:
    """``text`` with the words of ``glued`` (from ``glued_words``) parted by the dash they lost."""
    if not glued:
        return text

    def part(match: re.Match[str]) -> str:
        word = match.group(0)
        split = glued.get(word.lower())
        return word if split is None else f"{word[:split]}—{word[split:]}"

    return re.sub(r"[A-Za-z]{7,}", part, text)
