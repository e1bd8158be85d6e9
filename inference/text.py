"""Text hygiene around the model: cleaning what goes in, checking and trimming what comes out."""

from __future__ import annotations

import re
import unicodedata

# Control characters other than newline and tab (NUL included) never reach the model or the DB.
# Line and paragraph separators (and NEL) separate words: turned into spaces, not deleted, or
# "chest pain" written with them would read "chestpain" to triage. Invisible format characters
# (soft hyphen, zero-width, bidi controls, Mongolian and Hangul fillers) are deleted: "ki\u00adll"
# is "kill".
_SEPARATORS = re.compile(r"[\x85\u2028\u2029]")
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    r"\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\uffa0\ufeff]"
)
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?=\s|$)")
_WORD = re.compile(r"[a-z0-9']+")
# Chat-template markers a model may emit if it runs past its end of turn.
_TEMPLATE_MARKERS = re.compile(r"<\|[^|>]{1,40}\|>|</?s>")


def clean_input(text: str) -> str:
    """Normalise Unicode, drop control characters, and tidy whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = _SEPARATORS.sub(" ", text)
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def strip_template_markers(text: str) -> str:
    return _TEMPLATE_MARKERS.split(text, maxsplit=1)[0]


def trim_to_sentences(text: str) -> str:
    """Cut an unfinished trailing sentence (a model stopped by the token budget).

    Keeps the text as is when it has no sentence end at all, or ends on a list item."""
    text = text.strip()
    if not text or _SENTENCE_END.search(text[-2:] + " ") or text.endswith(":"):
        return text
    ends = list(_SENTENCE_END.finditer(text))
    if not ends:
        return text
    cut = ends[-1].end()
    # Don't throw away most of the answer to save a sentence.
    if cut < len(text) * 0.4:
        return text
    return text[:cut].rstrip()


def repetition_ratio(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier one: high means the model is looping."""
    tokens = words(text)
    if len(tokens) < n * 2:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def stutters(text: str, longest: int = 12) -> bool:
    """A small model's loop inside an otherwise fine answer: one word three times running ("hot,
    hot, hot") or a run of three or more words said twice in a row ("you have a fever that won't
    settle, you have a fever that won't settle"). Sentences are checked across their ends too."""
    tokens = words(text)
    for i in range(len(tokens) - 2):
        if tokens[i] == tokens[i + 1] == tokens[i + 2]:
            return True
    for size in range(3, longest + 1):
        for i in range(len(tokens) - 2 * size + 1):
            if tokens[i : i + size] == tokens[i + size : i + 2 * size]:
                return True
    return False


def quality_problem(answer: str, question: str, min_words: int = 8) -> str | None:
    """Why a model answer should not be shown, or None when it passes the gate."""
    answer_words = words(answer)
    if not answer_words:
        return "empty"
    if len(answer_words) < min_words:
        return "too short"
    if repetition_ratio(answer) > 0.35 or stutters(answer):
        return "repetitive"
    question_words = words(question)
    if len(question_words) >= 4:
        # An answer that mostly repeats the question is an echo, not an answer.
        overlap = sum(1 for word in answer_words if word in set(question_words)) / len(answer_words)
        if overlap > 0.8 or (
            " ".join(answer_words).startswith(" ".join(question_words)) and len(answer_words) < len(question_words) + 8
        ):
            return "echo"
    return None


# How a question starts ("how can I avoid...?", "is it serious"): with nobody in it, the triage
# classifier is not sure alone, and an urgent report's fallback answer is not given to it.
QUESTION_STARTS = frozenset("what whats how why which when where who can could is are does do should will".split())


def asks_something(message: str) -> bool:
    """A question, not a report of what is happening."""
    found = words(message)
    return message.rstrip().endswith("?") or bool(found[:1] and found[0] in QUESTION_STARTS)


# A greeting, thanks or goodbye on its own ("hi", "thanks, that really helped"): the pipeline says
# what MedBot is for instead of answering the previous question again; triage finds no emergency
# in it, whatever the classifier scores.
GREETING_WORDS = frozenset(
    "hi hello hey hiya howdy morning afternoon evening thanks thank thx ty cheers bye goodbye ok okay".split()
)
GREETING_FILLERS = frozenset(
    "good you so much very a lot again there medbot that thats it was is really helped helps helpful great "
    "perfect brilliant lovely awesome cool nice got understood for the your help all and".split()
)
THANKS_WORDS = frozenset("thanks thank thx ty cheers".split())
FAREWELL_WORDS = frozenset("bye goodbye".split())


def pleasantry(message: str) -> str:
    """ "greeting", "thanks" or "farewell" for a message of such words only (up to ten), else ""."""
    said = re.findall(r"[a-z]+", message.lower().replace("'", ""))
    if not (0 < len(said) <= 10 and GREETING_WORDS & set(said)):
        return ""
    if not all(word in GREETING_WORDS or word in GREETING_FILLERS for word in said):
        return ""
    if FAREWELL_WORDS & set(said):
        return "farewell"
    return "thanks" if THANKS_WORDS & set(said) else "greeting"
