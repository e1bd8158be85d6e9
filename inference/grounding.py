"""Keeping answers to what the passages say: the grounding text, the extract, and the gate.

The knowledge decides *what* is said, the model only *how*. Three pieces enforce that:

- ``grounding_text``: the passage sentences that matter to the question, within a word budget,
  for the prompt (long prompts cost seconds of prefill on a CPU, and noise invites invention);
- ``extract``: an answer made only of passage sentences, most relevant first, in their order;
  served when there is no model or when the model's answer fails the gate;
- ``faithfulness_problems``: every sentence of a model answer must be supported by the passages
  (or, for ordinary words, the question). A number, or a name the knowledge base treats as
  specific (a condition, drug, gene, organism — or a word it has never seen), must appear in the
  passages themselves; otherwise the sentence is unsupported and the answer is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from knowledge.search import DRUG_LIKE, Document, asked_as, spoken_names
from knowledge.text import content, normal_words

# Words a faithful paraphrase may add: advice to see someone, hedges, connectives, and everyday
# verbs and adjectives. They count as supported and are never treated as names: a small
# knowledge base (the curated entries alone) has never seen many ordinary words, which would
# otherwise look like invented ones. Medical words never belong here.
PHRASING = frozenset(
    """
    doctor doctors gp nurse nurses pharmacist pharmacists healthcare professional professionals
    provider providers clinic help helps helpful talk speak ask advice advise check see contact
    important may might can usually often sometimes common commonly include includes including
    such like also however because although while which include example examples mean means
    called known person people someone anyone everyone body need needs needed some most many
    more less other others different thing things way ways time times general generally information
    answer question questions yes well each every both either neither simple simply based
    make makes made making take takes took taken give gives given keep keeps kept become becomes
    feel feels felt seem seems look looks find found happen happens happened start starts started
    stop stops stopped go goes went come comes came let lets put puts use used using try tries
    show shows shown work works worked live lives lead leads cause causes caused affect affects
    change changes changed develop develops grow grows increase increases reduce reduces lower
    raise raises rise rises fall falls turn turns bring brings hold holds follow follows
    good better best bad worse worst big bigger small smaller large long short high low new old
    early late easy hard hot cold warm normal serious mild severe sudden slow fast quick quickly
    right wrong main major minor certain several few little enough whole full part parts
    day days week weeks month months year years hour hours minute minutes night morning
    first second last next often rarely always never already still again soon later
    """.split()
)
# A sentence is supported when at least this share of its content words is in the passages
# or the question, and none of its specific words is missing from the passages.
MIN_SUPPORT = 0.75

_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_NUMBER = re.compile(r"\d")
# A source's notes on how to read its own tables (GARD's symptom frequencies), true of every condition.
_BOILERPLATE = re.compile(
    r"\b(frequency of a sign or symptom|frequency may also be listed|first number of the fraction|"
    r"a frequency of \d+/\d+ means|these frequencies are based|no information on frequency|"
    r"the sign or symptom may be rare or common|has collected information on how often|"
    r"how often the symptom is seen)\b",
    re.I,
)
# ...but the sentence that introduces its list of symptoms introduces the answer.
_SYMPTOM_LIST = r"\bprovides the following list of signs and symptoms\b"
# After "...such as:", a line this short is one of its items.
MAX_ITEM_WORDS = 16
# The end of a sentence that opens a list: "Symptoms include:", "... due to factors including".
_LIST_OPENER = re.compile(rf"(:|\b(include|includes|including|such as|the following)|{_SYMPTOM_LIST}.*)$", re.I)
# Sentences that point around a source's own web page rather than answer anything.
_NAVIGATION = re.compile(
    r"\b(click|this page|table below|listed below|the following (list|table|resources)|these resources|"
    r"medlineplus|orphanet|human phenotype ontology|see (the )?(list|below|above)|visit www|www\.|website|web site|"
    r"more information|check out|key words|learn more|learn about more|read more|contact (the|your local)|fact sheet|"
    r"the videos?|your keyboard|glossary|for information on|go to the|"
    r"(animation|video|figure|illustration|image|picture)s? (below|above)|below shows|"
    r"the (animation|video|figure|illustration|image|picture) (shows|illustrates)|"
    # Where else to read: "Medscape Reference has an in-depth review", "registration is free".
    r"you may (need|have) to register|registration is free|has a page (called|on|about)|provides? a good overview|"
    r"tagged as|in-depth review|please reference|(medscape|emedicine|genereviews)('s)?( reference)?('s)? "
    r"(web ?site|article)|(detailed|additional|further) information\b.{0,120}?\b(is available|can be (accessed|viewed|"
    r"found)|may be (found|viewed|accessed)|is provided))\b",
    re.I,
)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``; each item of a list is one ("- item"), also where a source runs its
    items together on one line ("- malnutrition - liver diseases - lymphoma", as MedQuAD does)."""
    found = []
    for part in _SENTENCE.split(text):
        part = without_heading(part.strip()) if part else ""
        opener, dash, items = part.partition(" - ")
        if dash and not part.startswith("- ") and " - " in items and _LIST_OPENER_OR_VERB.search(opener):
            found.append(opener.rstrip(":") + ":")  # "They include - a - b - c.", "The symptoms are - a - b."
            part = f"- {items}"
        if part.startswith("- "):
            found += [f"- {item}" for item in _without_repeat([i.strip() for i in part[2:].split(" - ") if i.strip()])]
        elif part:
            found.append(part)
    return found


# "The most common symptoms are - a - b": a list opened by a verb, as MedQuAD's flattened pages have them.
_LIST_OPENER_OR_VERB = re.compile(rf"{_LIST_OPENER.pattern}|\b(are|is|were)$", re.I)


def sentence_key(text: str) -> str:
    """Text as two sentences or lists are compared for being the same words: case, punctuation and
    word endings aside."""
    return " ".join(normal_words(text))


def _without_repeat(items: list[str]) -> list[str]:
    """The items of a list without the same items said again run together after the last one,
    as flattened pages repeat them ("- a cough - sputum. a cough sputum.")."""
    if not items:
        return items
    head, stop, tail = items[-1].partition(". ")
    if stop and tail and sentence_key(tail) == sentence_key(" ".join([*items[:-1], head])):
        return [*items[:-1], head + "."]
    return items


# Small words a heading may have between its capitalised ones ("Signs of the Disease").
_HEADING_JOINERS = frozenset("a an and as at by for in of on or the to with".split())
# Words a leaflet's sentence starts with, a lower-case word after them.
_SENTENCE_STARTS = frozenset(
    "The There It Its This These Those Most Some Many Certain In If When People Doctors".split()
)
# A heading that ends in a stage or type label ("Stage IIA") says which one the sentence is about.
_ROMAN_LABEL = re.compile(r"[IVX]+[A-D]?")


def without_heading(sentence: str) -> str:
    """``sentence`` without a page heading glued to its front, which web sources flattened to text
    give away by running into a sentence's first word ("Medications Can Treat Symptoms There is no
    cure") or by saying it again ("Early Symptoms Early symptoms of Parkinson's are subtle", "Four
    Primary Symptoms The four primary symptoms are...")."""
    words = sentence.split()
    for size in range(2, 6):
        head, rest = words[:size], words[size : size + 2]
        if (
            len(rest) == 2
            and rest[0] in _SENTENCE_STARTS
            and rest[1][:1].islower()
            and all(w[:1].isupper() and w.strip("'s").isalpha() for w in (head[0], head[-1]))
            and len(head[-1]) > 1
            and not _ROMAN_LABEL.fullmatch(head[-1])
            and all(w[:1].isupper() or w in _HEADING_JOINERS for w in head)
            and len(words) > size + 4
        ):
            return " ".join(words[size:])
    for size in range(2, 7):
        head, rest = words[:size], words[size:]
        if rest[:1] == ["The"] and head[0].lower() != "the":
            rest = rest[1:]
        if len(rest) <= size or not all(w[0].isupper() or w in _HEADING_JOINERS for w in head):
            continue
        if [w.lower().rstrip(",;:") for w in rest[:size]] == [w.lower() for w in head]:
            return " ".join(words[size:])
    return sentence


def join_sentences(chosen: Sequence[str]) -> str:
    """Sentences back into text: list items each on a line of their own, so they read as a list."""
    text = ""
    for index, sentence in enumerate(chosen):
        item, after_item = sentence.startswith("- "), index > 0 and chosen[index - 1].startswith("- ")
        separator = "" if index == 0 else "\n" if item or after_item else " "
        text += separator + sentence
    return text


@dataclass(frozen=True)
class SentenceCheck:
    sentence: str
    support: float  # share of content words found in the passages or the question
    missing: tuple[str, ...]  # specific words (names, numbers) absent from the passages

    @property
    def supported(self) -> bool:
        return not self.missing and self.support >= MIN_SUPPORT


def _names_something(word: str, is_specific: Callable[[str], bool]) -> bool:
    if _NUMBER.search(word) or (len(word) >= 6 and DRUG_LIKE.search(word)):
        return True
    return word not in PHRASING and is_specific(word)


def check_sentences(
    answer: str, passages: Sequence[str], question: str, is_specific: Callable[[str], bool]
) -> list[SentenceCheck]:
    """Each sentence of ``answer`` with its support in ``passages`` (and ``question``).

    ``is_specific(word)`` says whether a word names something (rare in the knowledge base, or
    unknown to it): such a word must be in the passages themselves, not only in the question."""
    passage_words = set(normal_words(" ".join(passages)))
    question_words = set(normal_words(question))
    checks = []
    for sentence in sentences(answer):
        words = content(normal_words(sentence))
        if not words:
            continue
        supported = [w for w in words if w in passage_words or w in question_words or w in PHRASING]
        missing = tuple(dict.fromkeys(w for w in words if w not in passage_words and _names_something(w, is_specific)))
        checks.append(SentenceCheck(sentence, len(supported) / len(words), missing))
    return checks


def faithfulness_problems(
    answer: str, passages: Sequence[str], question: str, is_specific: Callable[[str], bool]
) -> list[SentenceCheck]:
    """The unsupported sentences of ``answer``; empty when it passes the gate."""
    return [c for c in check_sentences(answer, passages, question, is_specific) if not c.supported]


def _informative(sentence: str) -> bool:
    if sentence.endswith("?") or len(content(normal_words(sentence))) < 3:
        return False
    if (_NAVIGATION.search(sentence) and not _LIST_OPENER.search(sentence)) or _BOILERPLATE.search(sentence):
        return False
    # A short line without an end mark is a heading ("Complications of Marfan Syndrome").
    return (
        sentence.rstrip().endswith((".", "!", ":", ";", ")"))
        or len(sentence.split()) >= 12
        or bool(_LIST_OPENER.search(sentence))  # "... due to several factors, including"
    )


# A sentence that says when or where to get help (a professional, medical advice, emergency
# services): an extract of a curated entry never drops it for being off the question.
SEEK_HELP = re.compile(
    r"\b(doctor'?s?|gp|pharmacist|nurse|midwife|optometrist|dentist|health ?(service|visitor|professional)s?|"
    r"clinic|hospital|a&e|medical (advice|help|attention|care)|111|999|911|112|emergency|urgent(ly)?|"
    r"ambulance|call handler|straight away|right away|immediately)\b",
    re.IGNORECASE,
)


# Words that answer a kind of question whatever words it was asked in: "what is the life
# expectancy with ALS?" is answered by "most people ... die within 3 to 5 years". (Not for the
# kinds whose passages use the question's own words throughout: symptoms, treatment.)
ANSWER_CUES = {
    kind: re.compile(pattern, re.IGNORECASE)
    for kind, pattern in {
        "outlook": r"\b(die|dies|death|surviv\w*|live|lives|life|years|fatal|recover\w*|improve\w*|normal lifespan)\b",
        "frequency": r"\b(\d[\d,.]*|percent|one in|in every|estimated|affects|common|rare)\b",
        "causes": r"\b(caused|causes?|due to|results? from|because|triggers?|risk factors?)\b",
        "inheritance": r"\b(inherit\w*|autosomal|x-linked|parents?|copy|copies)\b",
        "prevention": r"\b(prevent\w*|lower (the|your) risk|reduce (the|your) risk|avoid\w*)\b",
    }.items()
}
# "Is it contagious?", "how do you catch it?": whatever its type, the sentences that say how it spreads.
SPREAD_QUESTION = re.compile(r"\b(contagious|infectious|catch|catching|spread\w*|transmit\w*|pass(ed)? on)\b", re.I)
SPREAD_CUE = re.compile(
    # Not a cancer spreading in the body: "has spread to other parts of the body".
    r"\b(spread\w*(?! (to|into|beyond) (other|nearby|distant|the (lymph|bone|liver|lung|brain|blood)))|"
    r"contagious|infectious|catch|caught|transmi\w*|passed (on|from)|person to person|"
    r"from one person to another|through the air)\b",
    re.IGNORECASE,
)
# Insurance and paying: "How is anxiety disorder treated?" is not answered by "Most insurance plans
# will cover treatment"; a question about cost or cover is.
PAYING = re.compile(
    r"\b(insurance|insurer|medicaid|medicare|medigap|health maintenance organi[sz]ations?|hmos?|co-?pays?|"
    r"deductibles?|premiums?|out-of-pocket|(pay|paying|paid)(?! (close |more |less )?attention)|afford\w*|cost|costs|"
    r"charges? people)\b",
    re.I,
)
# What a cue adds to a sentence's score: as much as sharing half of the question's words.
CUE_WEIGHT = 0.5


def select_sentences(
    question: str, text: str, max_words: int, keep_help: bool = False, names: Collection[str] = ()
) -> list[str]:
    """The sentences of ``text`` that best answer ``question``, in their original order.

    The lead sentence of a reviewed answer usually says the most, so position counts as much
    as sharing the question's words; whole sentences only, within ``max_words`` (the first
    chosen sentence is kept even when longer). With ``keep_help``, sentences that say when to
    get help (SEEK_HELP) are kept too, over the budget: an extract of a curated entry must not
    lose its "see a doctor if..." and "get emergency help for..." lines. ``names``: the topic's
    names (``spoken_names``), whose words do not say what is asked ("hereditary" in "hereditary
    hemorrhagic telangiectasia")."""
    asked = set(content(normal_words(question)))
    cues = SPREAD_CUE if SPREAD_QUESTION.search(question) else ANSWER_CUES.get(asked_as(question, names)[0])
    about_paying = PAYING.search(question) is not None
    seen: set[str] = set()
    candidates = []
    sentences_of = sentences(text)
    items: list[str] = []  # the list just read, to spot it said again run together
    for i, s in enumerate(sentences_of):
        key = sentence_key(s)
        repeated_list = len(items) > 1 and key == " ".join(items)
        items = [*items, key] if s.startswith("- ") else []
        off_topic = not about_paying and PAYING.search(s) is not None
        if _informative(s) and key not in seen and not repeated_list and not off_topic:  # sources repeat lists
            seen.add(key)
            candidates.append((i, s))
    scored = []
    for position, (index, sentence) in enumerate(candidates):
        words = set(content(normal_words(sentence)))
        overlap = len(words & asked) / (len(asked) or 1)
        if cues and cues.search(sentence):
            overlap += CUE_WEIGHT
        scored.append((overlap + 1.0 / (1 + position), index, sentence))
    chosen: list[tuple[int, str]] = []
    used = 0
    for _, index, sentence in sorted(scored, reverse=True):
        length = len(sentence.split())
        if chosen and used + length > max_words:
            continue
        chosen.append((index, sentence))
        used += length
        if used >= max_words:
            break
    chosen, used = _with_what_they_point_to(chosen, sentences_of, used, max_words)
    if keep_help:
        taken = {index for index, _ in chosen}
        chosen += [(i, s) for _, i, s in scored if i not in taken and SEEK_HELP.search(s)]
    return _with_whole_lists(chosen, sentences_of, used, max_words)


# A sentence that points back to the one before it: "This procedure involves...", "These medicines...".
POINTS_BACK = re.compile(r"^(?:This|These|That|Those|Such)\b")


def _with_what_they_point_to(
    chosen: list[tuple[int, str]], all_sentences: list[str], used: int, max_words: int
) -> tuple[list[tuple[int, str]], int]:
    """``chosen`` with each sentence that points back ("This procedure involves...") preceded by the
    sentence it points to, while that fits in a third as much again as the budget (always, for the
    only sentence chosen); without it, the sentence goes: read alone, "this" is nothing. Returns the
    sentences and the words used."""
    taken = {index for index, _ in chosen}
    kept = []
    for index, sentence in sorted(chosen):
        if not POINTS_BACK.match(sentence) or index - 1 in taken or index == 0:
            kept.append((index, sentence))
            continue
        before = all_sentences[index - 1]
        alone = len(chosen) == 1  # the one sentence that answers: bring what it points to whatever its length
        if (alone or used + len(before.split()) <= max_words * 4 / 3) and not POINTS_BACK.match(before):
            kept += [(index - 1, before), (index, sentence)]
            taken.add(index - 1)
            used += len(before.split())
        else:
            taken.discard(index)
            used -= len(sentence.split())
    if not kept:
        return chosen, used  # everything pointed back to more of the same: better something than nothing
    return kept, used


def _with_whole_lists(chosen: list[tuple[int, str]], all_sentences: list[str], used: int, max_words: int) -> list[str]:
    """``chosen`` (place, sentence) with its lists made whole, in order: a sentence that opens a list
    ("Symptoms include:") says nothing without its items, so they come with it while they fit in half
    as much again as the budget, and without any it goes; an item chosen on its own ("A tall, thin
    build.") brings the "...such as:" line it belongs to. Items are "- " lines, or after a colon the
    short lines that follow written alike ("Coughing", "Wheezing"), up to the first unlike one or the
    next list's opener."""
    taken = {index for index, _ in chosen}

    def colon_at(index: int) -> bool:
        return 0 <= index < len(all_sentences) and all_sentences[index].rstrip().endswith(":")

    for index, _ in sorted(chosen):
        opener = index - 1
        while opener in range(len(all_sentences)) and len(all_sentences[opener].split()) <= MAX_ITEM_WORDS:
            if colon_at(opener):
                break
            opener -= 1
        if colon_at(opener) and opener not in taken:
            chosen.append((opener, all_sentences[opener]))
            taken.add(opener)
            used += len(all_sentences[opener].split())

    def opens_list(index: int) -> bool:
        return _opens_list(all_sentences, index)

    listed: set[int] = set()  # openers whose items came along
    items: set[int] = set()  # sentences shown as list items
    for index, _ in sorted(chosen):
        if not opens_list(index):
            continue
        item = index + 1
        while item < len(all_sentences) and _NAVIGATION.search(all_sentences[item]):
            item += 1  # "You can use the MedlinePlus Medical Dictionary..." between a list and its opener
        stops = item < len(all_sentences) and all_sentences[item].rstrip().endswith(".")
        # Items that are labels, each followed by what it means ("Coughing. Coughing from asthma is often
        # worse at night. Wheezing. Wheezing is a whistling sound..."): the labels are the list.
        labelled = (
            colon_at(index)
            and _is_label(all_sentences, item)
            and not _is_label(all_sentences, item + 1)
            and _next_label(all_sentences, item + 1) is not None
        )
        while item < len(all_sentences) and not _BOILERPLATE.search(all_sentences[item]):
            text = all_sentences[item]
            # ("Angina or a Heart Attack?" after the last item is the next part's heading.)
            alike = (
                len(text.split()) <= MAX_ITEM_WORDS
                and text.rstrip().endswith(".") == stops
                and not text.rstrip().endswith("?")
            )
            if labelled and not _is_label(all_sentences, item):
                following = _next_label(all_sentences, item)
                if following is None:
                    break
                item = following  # what the label before said about itself is left out of the list
                continue
            if not (text.startswith("- ") or (colon_at(index) and alike)) or _LIST_OPENER.search(text):
                break
            if item not in taken:
                if used + len(text.split()) > max_words * 1.5:
                    break
                chosen.append((item, text))
                taken.add(item)
                used += len(text.split())
            listed.add(index)
            items.add(item)
            item += 1
    chosen = [(i, s) for i, s in chosen if not opens_list(i) or i in listed or i + 1 in taken]
    # An item whose list did not come with it ("- people with severe COPD." after a sentence on
    # spirometry) reads as a stray line: it goes too.
    kept: list[tuple[int, str]] = []
    for i, s in sorted(chosen):
        in_list = bool(kept) and (kept[-1][0] in listed | items or kept[-1][1].startswith("- ") or kept[-1][0] == i - 1)
        if (s.startswith("- ") or i in items) and i > 0 and not in_list:
            continue
        kept.append((i, s))
    return [f"- {s}" if i in items and not s.startswith("- ") else s for i, s in kept] or [s for _, s in sorted(chosen)]


def _opens_list(all_sentences: list[str], index: int) -> bool:
    """Whether the sentence at ``index`` opens a list: "Symptoms include:", or a sentence left
    unfinished right before "- " items ("... more likely to are people who" / "- were born to...")."""
    text = all_sentences[index].rstrip()
    if _LIST_OPENER.search(text):
        return True
    following = all_sentences[index + 1] if index + 1 < len(all_sentences) else ""
    return not text.endswith((".", "!", "?")) and not text.startswith("- ") and following.startswith("- ")


MAX_LABEL_WORDS = 4  # "Chest tightness.", "Shortness of breath."
LABEL_GAP = 3  # sentences of explanation a label may be followed by before the next label


def _is_label(all_sentences: list[str], index: int | None) -> bool:
    if index is None or not 0 <= index < len(all_sentences):
        return False
    text = all_sentences[index].rstrip()
    return text.endswith(".") and len(text.split()) <= MAX_LABEL_WORDS and not text.startswith("- ")


def _next_label(all_sentences: list[str], index: int) -> int | None:
    """The first label within ``LABEL_GAP`` sentences after ``index``, or None: the list has ended."""
    for following in range(index + 1, min(index + 1 + LABEL_GAP, len(all_sentences))):
        if _is_label(all_sentences, following):
            return following
    return None


def extract(question: str, documents: Sequence[Document], max_words: int = 90) -> tuple[str, list[Document]]:
    """An answer made only of passage sentences, and the passages it used: from the best
    passage, topped up from the next ones while the budget allows. ("", []) when no passage has
    an informative sentence."""
    parts: list[str] = []
    used: list[Document] = []
    said: set[str] = set()  # sentences already in the answer: two sources may hold the same passage
    left = max_words
    for document in documents:
        if left < 20:
            break
        chosen = select_sentences(
            question, document.text, left, keep_help=document.key.startswith("rule:"), names=spoken_names(document)
        )
        chosen = [sentence for sentence in chosen if sentence_key(sentence) not in said]
        said.update(map(sentence_key, chosen))
        if not chosen:
            continue
        parts.append(join_sentences(chosen))
        used.append(document)
        left -= sum(len(s.split()) for s in chosen)
        if document.question_type:
            break  # a passage written for this type of question is enough on its own
    return "\n\n".join(parts), used


def grounding_text(question: str, documents: Sequence[Document], max_words: int = 150) -> str:
    """The reference section of the prompt: numbered passages, cut to the sentences that matter."""
    blocks = []
    left = max_words
    for number, document in enumerate(documents, start=1):
        if left < 20:
            break
        chosen = select_sentences(question, document.text, left, names=spoken_names(document))
        if not chosen:
            continue
        left -= sum(len(s.split()) for s in chosen)
        blocks.append(f"[{number}] {document.title}\n" + join_sentences(chosen))
    return "\n\n".join(blocks)
