"""Words as the knowledge base compares them: lower case, light stemming, one spelling.

Search, focus matching and the faithfulness gate all use these functions, so a word counts as
"the same" in the same way everywhere (headaches = headache, anaemia = anemia).
"""

from __future__ import annotations

import itertools
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


def one_edit_apart(typed: str, word: str) -> bool:
    """Whether ``typed`` is ``word`` with one letter added, dropped, changed, or two neighbours swapped.
    Sharing a ``one_letter_less`` form is not enough: "snezing" and "seizing" share "sezing" but
    are two changes apart."""
    if typed == word or abs(len(typed) - len(word)) > 1:
        return typed == word
    start = 0
    while start < min(len(typed), len(word)) and typed[start] == word[start]:
        start += 1
    a, b = typed[start:], word[start:]
    return a[1:] == b[1:] or a == b[1:] or a[1:] == b or (a[:2] == b[1::-1] and a[2:] == b[2:])


# --- words run together -------------------------------------------------------------------------

# MedQuAD lost its dashes: "community-acquired pneumoniathe most common type of pneumoniaare
# treated at home". A rare word that is a common word followed by one of these is two words.
GLUE_TAILS = frozenset(
    """
    a an as at by in is of on or to the are and which that such including for with can may you these
    this was were has have from but usually called also its their who when where because often
    especially like during after before without within into should will must could would might
    """.split()
)
GLUE_MIN_COUNT = 20  # how often both words must occur apart in the texts for the split to be trusted
GLUE_RARE = 2  # a word seen more often than this is a word, not two run together...
GLUE_REPEATED = 15  # ...unless the sources repeat the same text: then with one of these tails only
REPEATED_TAILS = frozenset("the and are an such which may can could called also including into that".split())
GLUE_PAIR_COUNT = 2  # how often the words of a split must also be written apart, side by side
# Words that make real compound words: "needless", "downturn", "nonbloody" are not two words run together.
GLUE_PREFIXES = frozenset("non anti pre post over under out counter extra self semi multi well co re un".split())
GLUE_ENDINGS = frozenset("less ness ful fully like ever self ward wards turn out over off up down ship hood".split())
_GLUE_WORD = re.compile(r"[a-z]+")
# A comma or a number that lost the space after it: "system,sympathetic", "3percent".
_COMMA_GLUE = re.compile(r"(?<=[a-z]),(?=[a-z])")
_NUMBER_GLUE = re.compile(r"(?<=\d)(?=(?:percent|million|billion|years?|months?|weeks?|days?|hours?)\b)")

# The endings of conditions' names (anemia, hematuria, cirrhosis...).
_CONDITION_END = re.compile(r"(iasis|osis|itis|emia|aemia|uria|penia|pathy|plasia|trophy|algia)$")
# Where a word is part of a web address: "www.foodsafety.gov", "medlineplus/kneereplacement.html".
_ADDRESS_CHARS = frozenset("./@_:=&?#")
# A bracket or a stop with no space after it ("(AY-tree-uh)to", 'attack ("mini-stroke").Although'),
# and a zero-width space between words.
_BRACKET_GLUE = re.compile(r"(?<=[a-z]\))(?=[a-z])")
_STOP_GLUE = re.compile(r"(?<=[a-z)\"”])\.(?=(?:[A-Z][a-z]{3,}|The|It|In|An|As|If|At|On|Or)\b)")  # not "Cancer.Net"
_INVISIBLE_SPACE = re.compile(r"(?<=\w)\u200b(?=\w)")

Cuts = tuple[tuple[int, str], ...]  # where a glued word is parted, and with what


def glued_words(texts: Iterable[str]) -> dict[str, Cuts]:
    """Words that common words run together make in ``texts``, each with where it is parted:
    {"pneumoniathe": ((9, "—"),), "fromgenesor": ((4, " "), (9, " "))}. Needs a large collection
    (a whole source), where the words are common; in a handful of leaflets nothing is found.

    Two kinds: MedQuAD lost dashes before a little word ("pneumonia—the most common type"), and
    the spaces around what were links ("changes, either from genes or the environment"). A word
    parted into words of content must have those words written side by side elsewhere too."""
    texts = list(texts)
    counts = Counter(_GLUE_WORD.findall("\n".join(texts).lower()))
    found: dict[str, Cuts] = {}
    spaced: dict[str, list[str]] = {}
    for word, count in counts.items():
        if count > GLUE_REPEATED or len(word) < 7:
            continue
        split = _dash_split(word, counts)
        if split is not None:
            if count <= GLUE_RARE or word[split:] in REPEATED_TAILS:
                found[word] = ((split, "—"),)
        elif count <= GLUE_RARE and len(word) >= 8 and (parts := _word_split(word, counts)):
            spaced[word] = parts
    pairs = {pair for parts in spaced.values() for pair in itertools.pairwise(parts)}
    seen = Counter(
        pair for text in texts for pair in itertools.pairwise(_GLUE_WORD.findall(text.lower())) if pair in pairs
    )
    for word, parts in spaced.items():
        if all(seen[pair] >= GLUE_PAIR_COUNT for pair in itertools.pairwise(parts)):
            ends = list(itertools.accumulate(len(part) for part in parts))[:-1]
            # A condition's name run into what it means lost a dash ("anemia—low red blood cell
            # counts", "surgery—surgery to remove..."); other words lost a space.
            dash = len(parts) == 2 and (_CONDITION_END.search(parts[0]) is not None or parts[0] == parts[1])
            found[word] = tuple((end, "—" if dash else " ") for end in ends)
    return found


def _dash_split(word: str, counts: Counter[str]) -> int | None:
    """Where a common word and one of GLUE_TAILS run together ("pneumoniathe"), or None."""
    for split in range(len(word) - 1, 3, -1):
        head, tail = word[:split], word[split:]
        if tail not in GLUE_TAILS or counts.get(head, 0) < GLUE_MIN_COUNT:
            continue
        if len(tail) <= 2 and len(head) < 6:
            continue  # "thereof", "reactor": short endings make real words
        if (tail == "is" and head.endswith(("al", "ar", "an", "it"))) or (tail == "or" and head.endswith(("t", "s"))):
            continue  # "spiralis", "multilocularis"; "predictor", "processor"
        return split
    return None


def _word_split(word: str, counts: Counter[str]) -> list[str]:
    """Two or three common words that make ``word`` ("systemactivity", "fromgenesor"), the most
    common such parting, or []."""

    def common(part: str) -> bool:
        # A short part is a little word or a very common one: "lymphomatosis" is not "lymphoma to sis".
        needed = GLUE_MIN_COUNT if len(part) >= 4 or part in GLUE_TAILS else GLUE_MIN_COUNT * 10
        return counts.get(part, 0) >= needed and (len(part) >= 3 or part in GLUE_TAILS)

    best: tuple[int, list[str]] | None = None
    for i in range(3, len(word) - 2):
        for parts in ([word[:i], word[i:]], *([word[:i], word[i:j], word[j:]] for j in range(i + 2, len(word) - 1))):
            if not all(map(common, parts)) or parts[0] in GLUE_PREFIXES or parts[-1] in GLUE_ENDINGS:
                continue
            score = min(counts[part] for part in parts) - len(parts) * 1_000_000  # fewer parts first
            if best is None or score > best[0]:
                best = (score, parts)
    return best[1] if best else []


def unglue(text: str, glued: dict[str, Cuts]) -> str:
    """``text`` with the words of ``glued`` (from ``glued_words``) parted again, and a comma or a
    number that lost its space given it back."""
    text = _NUMBER_GLUE.sub(" ", _COMMA_GLUE.sub(", ", _INVISIBLE_SPACE.sub(" ", text)))
    text = _STOP_GLUE.sub(_stop_glue, _BRACKET_GLUE.sub(" ", text))
    if not glued:
        return text

    def part(match: re.Match[str]) -> str:
        word = match.group(0)
        cuts = glued.get(word.lower())
        if cuts is None or _in_address(match):
            return word
        pieces, start = [], 0
        for end, separator in cuts:
            pieces += [word[start:end], separator]
            start = end
        return "".join([*pieces, word[start:]])

    return re.sub(r"[A-Za-z]{7,}", part, text)


def _in_address(match: re.Match[str]) -> bool:
    """Whether the matched word is part of a web or e-mail address ("www.foodsafety.gov")."""
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1 : start]
    after = text[end : end + 2]
    return before in _ADDRESS_CHARS or after[:1] in ("/", "@") or (after[:1] == "." and after[1:2].isalpha())


def _stop_glue(match: re.Match[str]) -> str:
    """A stop followed by a capitalised word gets its space back, except inside an address."""
    text = match.string
    word = text[text.rfind(" ", 0, match.start()) + 1 : match.start()]
    return "." if "/" in word or "@" in word or "www" in word else ". "


# --- headings run into the text -----------------------------------------------------------------

# NIHSeniorHealth's answers keep their section headings with no stop after them: "Hips The hips
# are also common sites of osteoarthritis." A run of capitalised words where a sentence starts is
# a heading when a word that starts sentences (or the topic's name) begins the rest.
_HEADING_JOINERS = frozenset("and of the to in for or with on at your a an".split())
_STARTS_ONLY = frozenset(
    """
    The A An This These That It Its If When In For Although While Because During After Before Once
    As Each Anyone How What There
    """.split()
)
_STARTS_TOO = frozenset(
    """
    Most Many Some People Symptoms Treatment Doctors Researchers Scientists Other Older Women Men
    Children You Your To
    """.split()
)
_PRONOUNS = frozenset("It Its This These That There".split())
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?] ))(?=[A-Z])")
_HEADING_WORD = re.compile(r"[A-Z][A-Za-z'’-]*")


def drop_inline_headings(text: str, topic: str = "") -> str:
    """``text`` without the section headings run into it ("Hips The hips are..." → "The hips
    are..."), for a source known to write them so. ``topic``'s words can start a sentence too
    ("Affects Many Older People Osteoarthritis is..." → "Osteoarthritis is...")."""
    topic_words = {word for word in re.findall(r"[A-Za-z']+", topic) if word.lower() not in _HEADING_JOINERS}
    pieces, last = [], 0
    for match in _SENTENCE_START.finditer(text):
        start = match.start()
        cut = _heading_length(text[start:], topic_words)
        if cut:
            pieces.append(text[last:start])
            last = start + cut
    pieces.append(text[last:])
    return "".join(pieces)


def _heading_length(sentence: str, topic_words: set[str]) -> int:
    """How many characters of a heading open ``sentence`` (0 for none)."""
    words = sentence.split(" ", 12)
    run = 0
    for word in words:
        if not (_HEADING_WORD.fullmatch(word) or word in _HEADING_JOINERS):
            break
        run += 1
    if run == len(words) or (not words[run][:1].islower() and not words[run][:1].isdigit()):
        return 0
    while run and words[run - 1] in _HEADING_JOINERS:
        run -= 1  # "Medications Medications for glaucoma": the sentence starts before "for"
    if run < 2:
        return 0
    rest = sentence[len(" ".join(words[:run])) :]
    if "?" in rest.split(".")[0]:
        return 0  # a heading that asks ("Could Vaccines Make Shingles a Rare Disease?") reads as a sentence
    # "It", "This"... start a sentence right before its first small word, not before another
    # capitalised one ("Living Well With It Many people...": the sentence starts at "Many").
    strong = [i for i in range(1, run) if words[i] in _STARTS_ONLY and (i == run - 1 or words[i] not in _PRONOUNS)]
    last = words[run - 1]
    if strong:
        split = strong[-1]
    elif words[0] in _STARTS_ONLY and run == 2:
        return 0  # "In Paget's disease, however, ...": a sentence
    elif _HEADING_WORD.fullmatch(last) and (
        last in _STARTS_TOO
        or last in topic_words
        or last.rstrip("s") in topic_words
        or last in words[: run - 1]  # "Medications Medications for...": the heading's word again
    ):
        split = run - 1
    else:
        return 0
    if words[split - 1] in _HEADING_JOINERS or words[0] in _HEADING_JOINERS:
        return 0
    return len(" ".join(words[:split])) + 1


# A pronunciation guide in brackets, as NHLBI and NIDDK write them: "(a-tre-al fi-bri-LA-shun)",
# "(ray-NOHZ)". Read aloud by nobody in a chat answer; in the middle of a sentence it is noise.
_BRACKETED = re.compile(r" ?\(([A-Za-z]+(?:-[A-Za-z]+)+(?: (?:or )?[A-Za-z]+(?:-[A-Za-z]+)+)*)\)")
_VOWELS = frozenset("AEIOUY")


def _pronunciation(inner: str) -> bool:
    """Syllables, some in capitals for the stress, none a word of its own: not "ADP-ribose",
    "anti-CCP" or "ER-positive"."""
    syllables = [part for part in re.split(r"[- ]", inner) if part != "or"]
    if len(syllables) == 2 and any(len(part) >= 6 for part in syllables):
        return False  # a word and a prefix: "ADP-ribose"
    return (
        all(len(part) <= 6 and (part.islower() or part.isupper()) for part in syllables)
        and any(part.isupper() and len(part) >= 2 and _VOWELS & set(part) for part in syllables)
        and any(part.islower() and len(part) >= 2 for part in syllables)
        and not any(part.isupper() and not _VOWELS & set(part) for part in syllables)
    )


def without_pronunciations(text: str) -> str:
    """``text`` without bracketed pronunciation guides: "Atrial fibrillation (A-tre-al fi-bri-LA-shun),
    or AF, is..." → "Atrial fibrillation, or AF, is..."."""
    return _BRACKETED.sub(lambda match: "" if _pronunciation(match.group(1)) else match.group(0), text)
