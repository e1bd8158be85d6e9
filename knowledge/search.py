"""Find the passages that answer a question: its focus and its type first, words second.

A question is about something (its *focus*: a condition, drug or test, by any of its names) and
asks something about it (its *type*: symptoms, treatment, causes...). Lexical ranking alone
confuses the two — "Can I take ibuprofen with high blood pressure?" is not a question about
high blood pressure in general — so the index works in three steps:

1. find every known focus named in the question (longest names first, synonyms included);
2. keep the passages about those foci that also mention every *specific* word of the question
   (a rare word, or a drug-like name) — a passage that never mentions ibuprofen cannot answer
   a question about it;
3. among them prefer the passage that mentions the question's other foci too, then the one of
   the question's type, then BM25 (bm25s) over the words.

Without a named focus, a passage only matches when most of its focus's words are in the
question and it scores above a calibrated threshold. Below that there is no match, and the
caller says it has no reliable answer.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import bm25s
import numpy as np

from knowledge.text import STOPWORDS, content, normal_words, one_edit_apart, one_letter_less, phrase, stem, tokens


def _forms(words: str) -> frozenset[str]:
    """Words as written and as ``knowledge.text`` stems them ("causes" and "caus")."""
    return frozenset(w for word in words.split() for w in (word, stem(word)))


# Longest focus name looked up in a question, in words.
MAX_PHRASE_WORDS = 12
# Most words in front of a name that can narrow it ("juvenile amyotrophic lateral sclerosis").
MAX_QUALIFIERS = 3
# A word in fewer than this share of passages is "specific": a passage must mention it to answer.
SPECIFIC_DF = 0.01
# Without a named focus, one of the focus words the question shares must be in fewer passages than this.
DISTINCTIVE_DF = 0.02
# A word in front of a focus name that is in fewer passages than this makes it a narrower name.
RARE_MODIFIER_DF = 0.003
# A "Head - name" focus prefix shared by this many foci is a category ("Parasites - ..."), not a name.
CATEGORY_FOCI = 3
# Without a named focus: the share of a passage's focus words the question must contain.
PARTIAL_FOCUS_SHARE = 0.6
# Words too general to name a focus on their own, or to make a question specific.
GENERIC = _forms(
    """
    disease diseases disorder syndrome condition type pain problem problems health information
    cancer symptom sign treatment cause test risk therapy medicine medication care support help
    """
)
# ...and people: they narrow a focus ("heart disease in women") but never name one.
PEOPLE = _forms(
    "people person adult adults child children baby babies man men woman women infant infants patient patients"
)
# Names of medicines by their usual endings (ibuprofen, amoxicillin, lisinopril, metformin...).
DRUG_LIKE = re.compile(
    r"(profen|cillin|mycin|floxacin|cycline|pril|sartan|olol|statin|azole|prazole|vir|mab|nib|"
    r"formin|gliptin|oxetine|pam|lam|codone|morphine|dronate|tidine|semide|thiazide|pine|caine)$"
)

TYPE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("frequency", r"\b(how common|how many people|how rare|prevalence|how often do(es)? .* (occur|happen))\b"),
        (
            "inheritance",
            r"\b(inherit\w*|hereditary|passed down|run(s)? in (the |my )?famil\w*|pass (it )?on to|"
            r"pass(ed)? (it )?(from|to|on) (a |my |the |his |her |their )?(mother|father|parent|son|daughter|child|"
            r"children|kids|baby|babies)\w*|skips? a generation|"
            r"(is|are|was) [\w' -]{0,40}\bgenetic(?! (change|cause|mutation|test)))\b",
        ),
        ("genetic changes", r"\b(genes?|genetic (change|cause|mutation)s?|mutations?|chromosome\w*)\b"),
        ("susceptibility", r"\b(at risk|risk factors?|who gets|who can get|more likely to get)\b"),
        ("prevention", r"\b(prevent\w*|avoid (getting|catching)|(reduc|lower)(e|es|s|ing)? (my |the |your )?risks?)\b"),
        ("exams and tests", r"\b(diagnos\w*|tests?|tested|screening|exams?|scan|detect\w*)\b"),
        # "Does anemia cause hair loss?" asks what anemia leads to, not what causes anemia.
        (
            "complications",
            r"\b(complications?|lead to|long[- ]term effects?)\b"
            r"|\b(can|could|does|do|will|would|might) \w[\w' -]* cause \w",
        ),
        (
            "outlook",
            r"\b(outlook|prognosis|life expectancy|survival|recover\w*|go away|chances|die (of|from)|fatal|deadly|"
            r"how long (do|does|will|can) "
            r"[\w' ]{1,30} live|how (fast|quickly) does [\w' ]{1,30} progress)\b",
        ),
        ("stages", r"\b(stages?|staging)\b"),
        ("research", r"\b(research|clinical trials?|studies|being done)\b"),
        ("symptoms", r"\b(symptoms?|signs?|feel like|look like|how (do|would|can) (i|you) (know|tell))\b"),
        (
            "treatment",
            r"\b(treat\w*|cures?|cured|therap\w*|medicines?|medications?|drugs?|manag\w*|get rid of|"
            r"remed\w*|relie\w*|surgery|curable|what (can|should) i (do|take))\b",
        ),
        (
            "causes",
            r"\b(causes?|caused|why (do|does|did|am|is)|what makes|triggers?|what(s|'s| is| are) behind|"
            r"how (do|does|did|can|could) (you|i|we|people|someone|one|a person|kids|children) (get|catch)|"
            r"contagious|spread|catch it|catching it|come from|comes from)\b",
        ),
        # "Is it serious?": what the overview says of it.
        (
            "information",
            r"\b(what (exactly )?(is|are)|what's|whats|tell me about|explain|mean|definition|about|"
            r"serious|dangerous)\b",
        ),
    )
)


# Names of conditions by their usual endings (trichuriasis, cysticercosis, ...): such a word the
# knowledge base has never seen names something it does not cover.
CONDITION_LIKE = re.compile(r"(iasis|osis|itis|emia|aemia|oma|pathy|plasia|trophy|algia|uria|ectasia)$")

ROMAN_NUMERALS = frozenset("ii iii iv vi vii viii ix".split())
# Who a topic is about: "urinary tract infections in children" is not the general entry, and a
# passage on childhood leukaemia does not answer a question about adults.
POPULATIONS = {
    group: frozenset(stem(word) for word in words.split())
    for group, words in {
        "children": "child children childhood pediatric paediatric infant infants infantile juvenile baby babies "
        "newborn newborns toddler toddlers teen teens teenager teenagers adolescent adolescents kid kids",
        "adults": "adult adults elderly senior seniors",
        "men": "male men",
        "women": "female women",
        "pregnancy": "pregnancy pregnant",
        "animals": "dog dogs puppy puppies cat cats kitten kittens pet pets horse horses animal animals",
    }.items()
}
# Everyday words a passage may say another way: "what should she eat?" is answered by one on diet.
_SAME = [
    "eat eating food foods diet meal meals nutrition",
    "drink drinking fluid fluids water",
    "exercise exercising activity active sport sports walking",
    "sleep sleeping rest",
]
SAME_THING = {word: group for line in _SAME for group in [_forms(line)] for word in group}
# A question of one type that no passage of its topic answers, and the type whose passages come
# nearest when they speak of families and genes: whether it is inherited is said under who is at risk.
NEAREST_TYPES = {
    "inheritance": ("genetic changes", "susceptibility"),
    "genetic changes": ("inheritance",),
    "susceptibility": ("inheritance",),
}
FAMILY_WORDS = _forms("family families inherit inherited hereditary genes gene genetic parent parents")
PEOPLE_GROUPS = frozenset(POPULATIONS.values())  # each group's words, as ``qualifiers`` gives them
# Groups that a general passage speaks to as well: "celiac disease in adults" is answered by
# the passage on celiac disease (one written for children is still not, see ``same_kind``).
GENERAL_GROUPS = frozenset({"adults", "men", "women"})
# The same at the end of a title: "Urinary Tract Infection In Adults".
GENERAL_PEOPLE = re.compile(r"\s+(?:in|for)\s+adults?$", re.I)  # "in Women" pages speak to women
# Words around a focus name that do not make it a different thing: how bad it is, what is asked.
INTENSITY = _forms(
    "severe mild bad terrible awful constant recurring frequent sudden really very "
    "small little large big tiny minor slight everyday daily usual regular occasional "
    "usually often always normally typically generally sometimes ever still"
)
QUESTION_VERBS = _forms(
    "treat treated manage managed prevent cure diagnose explain get got have cause causes avoid beat fight handle "
    "control living live suffer suffering tell describe define trigger triggers worsen worsens catch caught"
)
SCAFFOLDING = _forms(
    """
    inherited hereditary genetic treated diagnosed caused contagious curable serious dangerous common
    passed managed prevented tested related symptom sign treatment cure prognosis outlook causes risk
    test tests mean means like look feel start starts go away last lasts affect affects run runs
    need needs heal heals hurt hurts spread spreads happen happens come comes matter matters
    """
)


# Ordinary words that stand next to a name without making it a longer one: verbs and particles
# ("paracetamol *together* with", "can stress *make* ibs flare up", "bring my blood pressure *down*",
# "the best way to *lower* cholesterol"), how a medicine comes ("hayfever *tablets*", "*needs*
# antibiotics") and how a result is judged ("a *normal* hba1c", "*early* alzheimers"). A list, not
# every word our own entries use: those include "familial", "heart" and "diabetic", which do.
AROUND_A_NAME = _forms(
    "make makes made making together down up flare flares worse better go goes come comes start starts keep "
    "tablet tablets pill pills medicine medicines medication spray cream drops need needs normal early lower "
    "raise reduce exactly"
)
# A number in front of these is an age ("a 3 year old", "my 6 week old"), not a numbered type.
AGE_UNITS = _forms("year years month months week weeks day days")
# A name "like" a known one is another condition ("Proteus-like syndrome", "dysautonomia like disorder").
LIKE_NAMES = _forms("disorder disease syndrome condition illness")
# Single letters that are words, not part of a name ("a", "I").
LETTER_WORDS = frozenset("a i".split())
# Words that place a kind of something on the opposite side: "hypoplastic left heart syndrome"
# is not "hypoplastic right heart syndrome".
OPPOSITES = {
    stem(a): stem(b)
    for pair in (
        "left right",
        "upper lower",
        "acute chronic",
        "primary secondary",
        "congenital acquired",
        "dominant recessive",
        "early late",
        "central peripheral",
        "benign malignant",
    )
    for a, b in (pair.split(), reversed(pair.split()))
}


def hyphen_joined(text: str) -> frozenset[tuple[str, str]]:
    """Pairs of (normalised) words written joined by a hyphen: "rubinstein-taybi" is one name,
    so a passage on "Taybi syndrome" does not answer it."""
    pairs = set()
    for left, right in re.findall(r"([a-z0-9]+)-(?=([a-z0-9]+))", text.lower()):
        a, b = normal_words(left), normal_words(right)
        if a and b:
            pairs.add((a[-1], b[0]))
    return frozenset(pairs)


def kind_marks(words: list[str]) -> set[str]:
    """What numbers a kind in a name: numbers, Roman numerals, a letter after "type" ("type 2",
    "type IV", "type A", "type I"), and the chromosome of an "X-linked" or "Y-linked" kind."""
    marks = {w for w in words if is_identifier(w)}
    marks.update(b for a, b in itertools.pairwise(words) if a == "type" and len(b) == 1 and b.isalpha())
    marks.update(f"{a} linked" for a, b in itertools.pairwise(words) if b == "linked" and is_letter(a))
    return marks


ROMAN_VALUES = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}


def arabic(marks: set[str]) -> set[str]:
    """Kind marks with Roman numerals written as numbers: "type IV" is "type 4"."""
    return {ROMAN_VALUES.get(mark, mark) for mark in marks}


def word_bag(words: list[str]) -> str:
    """A name's words in a fixed order, without stopwords: names that differ only in word order
    (GARD writes "Cerebellar ataxia, autosomal recessive" and "autosomal recessive cerebellar
    ataxia") have the same bag."""
    return " ".join(sorted(set(words) - STOPWORDS))


def is_letter(word: str, words: frozenset[str] = LETTER_WORDS) -> bool:
    """A single letter that names a kind ("Q fever", "hepatitis E", "X-linked"), other than the
    letters that are ``words`` ("a", "I"; after "type" even "a" is a letter: "type A")."""
    return len(word) == 1 and word.isalpha() and word not in words


# Words that join a name to the rest of a sentence: "blood pressure without medicine" is a
# question about blood pressure, though some long names contain "without" ("... without deafness").
LINKING = _forms("without during despite against between within among through while since behind")
# Where on the body a skin or joint complaint is ("eczema on his *cheeks*"): the topic's passages
# answer for it without naming the place. Not the places that make another topic (calf, neck, chest).
PLACES = _forms("cheek cheeks forehead chin scalp elbow elbows wrist wrists ankle ankles thigh thighs toe toes")
# After a name, what it leads to is asked, not a longer name ("lead poisoning").
LEADS_TO = ["lead", "to"]
# How a follow-up points back at the topic before it: "is *it* serious?", "*and* in children?",
# "*what about* treatment?".
REFERRING = frozenset("it its this that they them these those one same".split())
POINTING_BACK = frozenset("he she him her his hers their".split())  # someone a previous message named
# Chat around a follow-up, not its topic: "ok, one more question: how is it treated?", "cool, can kids
# get it?", "does it come back?".
CHAT_WORDS = _forms(
    "ok okay cool thanks thank thx great nice right well also another more one question thing quick hi "
    "hello hey please sorry yes no yeah come comes coming came back again get gets got kid kids live "
    "helpful useful interesting good "
    # "what about my husband?": the same question for someone else.
    "husband wife partner mum mom mother dad father son daughter brother sister friend grandma grandad nan"
)
FOLLOWING_ON = re.compile(r"\s*(?:what|how) about\b|\s*also\b", re.I)
# Words that end the name of a condition ("heart disease"): a question with one has a topic.
CONDITION_HEADS = _forms("disease diseases disorder disorders syndrome cancer infection")
# Words that describe a condition when they come after its name ("is glaucoma hereditary?"),
# though in front of it they name a kind ("hereditary glaucoma").
PREDICATES = _forms(
    "hereditary inherited genetic familial congenital acquired malignant benign contagious infectious "
    "chronic acute fatal serious dangerous common rare curable treatable preventable"
)
# Abbreviations people use every day for common things, which MedQuAD's synonym lists also give
# to rare diseases ("What is an STD?" is not about spondylothoracic dysostosis).
EVERYDAY_ABBREVIATIONS = frozenset(
    """
    STD STI CHF CAD OCD IVF PET CT MRI IBS TIA UTI BP ED PMS IUD ICU ER GP ENT EKG ECG CPR UV BMI
    IQ OT PT NHS A&E AAA
    """.split()
)
# Kinds of disease too grave to assume: a passage on "X cancer" only answers a question that says so.
SERIOUS_KINDS = _forms("cancer carcinoma tumor tumour leukemia leukaemia lymphoma")
# A word short enough to be an abbreviation typed in lower case ("adhd", "tb").
LOWER_SHORT_WORD = re.compile(r"\b[a-z]{2,5}\b")
# Another name in brackets in the middle of a name: "gum (periodontal) disease".
MID_NAME_BRACKET = re.compile(r"\s*\([^()]*\)(?=\s+[A-Za-z])")
# A roman type with an optional letter ("type iva"): not an abbreviation.
ROMAN_TYPE = re.compile(r"(?:i{1,3}|iv|vi{0,3}|ix|x)[a-d]?")
# The opening of a passage that is nothing but a list of other pages to read.
REFERRAL_ONLY = re.compile(r"\s*these resources address\b", re.I)
# How long a condition lasts, in front of its name: a passage on the condition that speaks of
# its chronic form answers for it when no passage is named so.
CHRONIC = _forms("chronic")
STAGES = _forms("stage stages")
HOW_FAR = STAGES | {"grade"}  # a number after these says how far it has gone, not which kind ("stage 3")
SPREADING = _forms("spread spreads contagious catch transmitted")
# A word that makes what comes before it one condition's name: "sick sinus syndrome".
SYNDROME = _forms("syndrome")
# How a question asks ("what are the warning signs of..."), also in some curated titles.
WARNING = _forms("warning warnings")
# Every word that says how a question is asked rather than what it is about.
ASKING = STOPWORDS | GENERIC | PEOPLE | INTENSITY | QUESTION_VERBS | SCAFFOLDING | LINKING | PREDICATES | WARNING


def population(word: str) -> str:
    """The group of people a (normalised) word names, or ""."""
    return next((group for group, words in POPULATIONS.items() if word in words), "")


# Words that make an animal someone's own: "my dog", "our old cat", "the puppy".
OWNING = frozenset("my our his her their your the".split())
DETERMINERS = OWNING | frozenset("a an".split())
# What an animal that is the subject of a question does: "my puppy *has* diarrhoea", "our dog *ate*".
PET_DOINGS = _forms(
    "has had is was keeps kept ate eaten seems got gets wont cant isnt hasnt doesnt threw vomited "
    "started stopped swallowed drank licked been looks collapsed fainted fell limping bleeding vomiting "
    "coughing sneezing scratching"
)
# A person speaking of themselves: the question is about them too ("my dog has fleas and I itch").
SELF = _forms("i im ive me myself")
# ...but not the "I" of asking what to do: "my cat is having a seizure, what should I do?".
ASKING_WHAT_TO_DO = re.compile(
    r"\b(?:(?:what|how|when|where|who) (?:should|do|can|must|shall|would) i|should i|do i need to|can i|"
    r"shall i|i need to know|i dont know what to do)\b",
    re.I,
)


def about_a_pet(text: str) -> bool:
    """Whether ``text`` is about someone's animal alone ("my puppy has diarrhoea", "our old cat is
    limping"): not animals in general ("animal fats", "a dog bite"), nor a person who mentions their
    pet ("can I get hookworm from my dog?", "I'm stressed since our dog died")."""
    words = normal_words(text)
    if SELF & set(normal_words(ASKING_WHAT_TO_DO.sub(" ", text.replace("'", "")))):
        return False
    return any(
        population(word) == "animals"
        and (words[index - 1] in OWNING or (index > 1 and words[index - 2] in OWNING))
        and words[index + 1 : index + 2] != ["scan"]  # "the CAT scan"
        and bool(PET_DOINGS & set(words[index + 1 : index + 3]))
        for index, word in enumerate(words)
        if index > 0
    )


# A word in fewer passages than this may be a misspelling the sources share ("symtoms").
RARE_SPELLING = 3
# A passage with at least this share of its sentences asking questions is a list of questions to ask.
QUESTION_LIST_SHARE = 0.3
# The shortest word of a name that ``respelled`` puts right: shorter ones are one letter from too many.
MIN_NAME_TYPO = 5
# A one-word name is put right alone ("astma") only when it is this common in the sources: a rare
# disease's name one letter from it may be a name of its own.
COMMON_NAME_PASSAGES = 30
# The words questions are asked with, as people write them, for ``KnowledgeIndex.respelled``.
# Only long ones: a short word is one letter from too many others ("dogs" from "does").
ASKING_WORDS = frozenset(
    """
    symptoms symptom treatment treatments treated causes caused prevent prevention diagnosed
    diagnosis inherited hereditary contagious medicine medicines medication disease syndrome
    serious dangerous
    """.split()
)

# Each way of dropping a letter from an asking word → the asking words it comes from.
_SPELLING_INDEX: dict[str, set[str]] = defaultdict(set)
for _word in ASKING_WORDS:
    for _variant in one_letter_less(_word):
        _SPELLING_INDEX[_variant].add(_word)


def initialism(name: str) -> str:
    """The capitals a name is shortened to ("Attention Deficit-Hyperactivity Disorder" → "ADHD"),
    or "" for a name too short to have one."""
    words = [w for w in re.split(r"[\s-]+", name) if w and w.lower() not in STOPWORDS]
    if len(words) < 3 or not all(w[0].isalpha() for w in words):
        return ""
    return "".join(w[0].upper() for w in words)


def focus_key(document: Document) -> str:
    """The focus a document belongs to: documents whose focus names compare equal share one."""
    return " ".join(name_form(normal_words(document.focus))) or document.key


def name_form(words: list[str]) -> list[str]:
    """Words of a name as names are compared: "type" before a number is left out, so "disease
    type 1" meets "disease 1"."""
    return [w for i, w in enumerate(words) if not (w == "type" and i + 1 < len(words) and is_identifier(words[i + 1]))]


# Something taken: "can i take X", "taking X", "i was prescribed X".
TAKEN = re.compile(r"\b(?:take|takes|taking|took|prescribed|started|starting)\s+(?:some\s+|the\s+)?([a-z]{6,})\b", re.I)
# Someone's age: "6 years old", "a 3yo", "8 weeks old", "my son is 6", "she is 8 weeks", "aged 70".
# Not a type number. "for 3 days", "30 weeks pregnant" and "my hba1c is 7" are not ages.
_AGE_UNIT = r"(?P<{}>year|yr|month|mth|week|wk|day)s?"
_SOMEONE = r"son|daughter|boy|girl|child|kid|baby|toddler|he|she|brother|sister|grandson|granddaughter|niece|nephew"
AGE = re.compile(
    rf"\b(?P<number>\d{{1,3}})\s*-?\s*(?:{_AGE_UNIT.format('unit')}\s*-?\s*old\b|yo\b|y/o\b)"
    rf"|\b(?:{_SOMEONE})\s+(?:is|was|turned|turns|has just turned)\s+(?P<said>\d{{1,3}})"
    r"(?!\s*(?:weeks?|months?|wks?)?\s*pregnant)"
    rf"(?:\s*{_AGE_UNIT.format('said_unit')})?\b(?!\s*(?:%|percent|mg|kg|lbs?|stone|degrees?|°|c\b|f\b))"
    r"|\baged?\s+(?P<aged>\d{1,3})\b",
    re.I,
)
CHILD_YEARS = 16  # under this many years old: a child, as the sources write for children


def ages_in(question: str) -> dict[str, bool]:
    """The numbers of a question that are someone's age, each with whether it is a child's."""
    ages = {}
    for match in AGE.finditer(question):
        number = match.group("number") or match.group("said") or match.group("aged")
        unit = (match.group("unit") or match.group("said_unit") or "year").lower()
        ages[number] = unit not in ("year", "yr") or int(number) < CHILD_YEARS
    return ages


def _for_people(title: str) -> tuple[str, set[str]]:
    """A title's topic without the people it names, and those people's groups: "Fever in children"
    is ("fever", {"children"})."""
    words = [w for w in normal_words(title) if w not in STOPWORDS]
    return " ".join(sorted(w for w in words if not population(w))), {g for w in words if (g := population(w))}


def _reads_as_answer(doc: Document, text_words: set[str]) -> bool:
    """Whether a passage reads as an answer (``text_words``: its text's words, ``normal_words``). Of a
    topic's passages of one type, BM25 may put first one that answers nothing: a page's later part,
    short under the title it shares with the passage that answers, which never names the topic ("A
    week or two after the blisters erupt, the sores crust over"); or a list of questions to ask the
    doctor ("What is my goal blood pressure?"). Ranked last, worked out once per index."""
    telling = [w for w in content(normal_words(doc.focus)) if w not in GENERIC and w not in PEOPLE]
    names_it = not telling or bool(set(telling) & text_words)
    if doc.key.startswith("rule:"):
        return names_it  # our own entries ask on purpose ("Face: has it drooped?")
    marks = doc.text.count("?")
    return names_it and (marks < 4 or marks < QUESTION_LIST_SHARE * (doc.text.count(".") + marks))


def is_identifier(word: str) -> bool:
    """A word that numbers a kind of something: 2, 2j, iii, iiib."""
    return (
        any(c.isdigit() for c in word)
        or word in ROMAN_NUMERALS
        or (word[-1:] in "abcd" and word[:-1] in ROMAN_NUMERALS)
    )


# How a message tells its story rather than asks: "my son was diagnosed with ADHD. What
# treatments...?" asks about treatment, not diagnosis ("how are babies diagnosed with it?" does).
TOLD = re.compile(r"\b(?:was|were|been|got|just|recently|newly)\s+diagnosed\b")


def question_type(question: str) -> str:
    """The kind of question, by the first matching pattern (most specific first), or ""."""
    return asked_as(question)[0]


WORD = re.compile(r"[a-z0-9]+")


def asked_as(question: str, names: Collection[str] = ()) -> tuple[str, str]:
    """The kind of question and the words that say so ("causes", "what causes"), or ("", "").
    Words that are part of one of ``names`` (in ``name_form``, as ``KnowledgeIndex.named_spans``
    gives them) do not say it: "how do doctors treat *hereditary* hemorrhagic telangiectasia?"
    asks about treatment."""
    text = TOLD.sub(" ", " ".join(question.lower().split()))
    padded = [f" {name} " for name in names]
    for name, pattern in TYPE_PATTERNS:
        for found in pattern.finditer(text):
            if not padded or not _inside_a_name(text, found.start(), found.end(), padded):
                return name, found.group()
    return "", ""


def _inside_a_name(text: str, start: int, end: int, padded: list[str]) -> bool:
    """Whether text[start:end] is said together with the word before or after it as part of a name."""
    before, after = WORD.findall(text[:start])[-1:], WORD.findall(text[end:])[:1]
    said = WORD.findall(text[start:end])
    for words in (before + said, said + after):
        form = " ".join(name_form(normal_words(" ".join(words))))
        if len(words) > len(said) and form and any(f" {form} " in name for name in padded):
            return True
    return False


@dataclass(frozen=True)
class Document:
    """One searchable answer: an imported passage or a curated entry."""

    key: str  # "passage:12" or "rule:3": unique, stable while the row exists
    title: str
    focus: str
    text: str
    synonyms: tuple[str, ...] = ()  # the source's other names for the focus, and the aliases below
    aliases: tuple[str, ...] = ()  # names curators added (``knowledge.Alias``): found as written, any length
    question_type: str = ""  # "" answers any type (curated entries cover a whole topic)
    url: str = ""
    source: str = ""  # the source's name
    publisher: str = ""
    priority: int = 0  # breaks near-ties between equally good passages


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float  # BM25 of the question against the passage
    focus_matched: bool  # the question names this passage's focus
    type_matched: bool


def focus_variants(name: str) -> set[str]:
    """The names a focus goes by: as written, without brackets, the bracketed part, the part
    after a dash or colon ("Parasites - Taeniasis" → "Taeniasis")."""
    variants = {name}
    without = re.sub(r"\s*\([^)]*\)", "", name).strip()
    variants.add(without)
    variants.update(part.strip() for part in re.findall(r"\(([^)]*)\)", name))
    for separator in (" - ", ": ", "; "):
        parts = without.split(separator)
        # "Parasites - Taeniasis" names taeniasis; "Ataxia - hypogonadism - choroidal dystrophy"
        # is one syndrome's name, not three names for it.
        if len(parts) == 2 or (len(parts) > 2 and separator != " - "):
            variants.update(part.strip() for part in parts)
        elif len(parts) > 2 and set(phrase(parts[-1]).split()) & set(phrase(parts[-2]).split()):
            # A path that narrows as it goes, "Parasites - Lice - Head Lice": the last part is the name.
            variants.add(parts[-1].strip())
    variants.add(re.sub(r"^what i need to know about\s+", "", without, flags=re.I))
    variants.add(GENERAL_PEOPLE.sub("", without))  # "Kidney Stones in Adults" is about kidney stones
    return {v for v in variants if v}


def spoken_names(document: Document) -> list[str]:
    """The names a document's topic goes by, in ``name_form``: what ``asked_as`` leaves out of
    how a question about it asks."""
    return [" ".join(name_form(normal_words(name))) for name in (*focus_variants(document.focus), *document.synonyms)]


def foci_named(spans: Iterable[tuple[int, int, str, frozenset[str]]]) -> dict[str, str]:
    """Focus key → the name the question used, from ``KnowledgeIndex.named_spans``."""
    found: dict[str, str] = {}
    for _, _, name, keys in spans:
        for key in keys:
            found.setdefault(key, name)
    return found


class KnowledgeIndex:
    """An in-memory index of documents; build one per knowledge version, then only read it."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        n = len(self.documents)
        self._texts: list[str] = []  # " tok tok ... " per document, for "does it mention X" checks
        self._names: list[str] = []  # the same for its focus, synonyms and title alone
        self._name_list: list[list[str]] = []  # each of its names on its own, " w w " name_form
        self._answers: list[bool] = []  # whether it reads as an answer (``_reads_as_answer``)
        corpus: list[list[str]] = []
        df: dict[str, int] = defaultdict(int)
        for doc in self.documents:
            name_words = normal_words(" ".join((doc.focus, *doc.synonyms)))
            title_words = normal_words(doc.title)
            body_words = normal_words(f"{doc.title}\n{doc.text}")
            self._answers.append(_reads_as_answer(doc, set(body_words[len(title_words) :])))
            names, body = content(name_words), content(body_words)
            corpus.append(names + names + body)  # the names count double: they say what it is about
            self._texts.append(" " + " ".join(name_words + body_words) + " ")
            self._names.append(" " + " ".join(name_words + title_words) + " ")
            self._name_list.append(
                [
                    f" {' '.join(name_form(normal_words(name)))} "
                    for name in (*focus_variants(doc.focus), *doc.synonyms, doc.title)
                ]
            )
            for word in set(names + body):
                df[word] += 1
        self._df = df
        self._n = n
        # Passages that only list where to read more ("These resources address the diagnosis or
        # management of X: - ..."): they answer nothing themselves.
        self._referrals = {i for i, doc in enumerate(self.documents) if REFERRAL_ONLY.match(doc.text)}
        # Everyday words, as our own entries use them in plain English ("was", "arm", "hit").
        self._everyday = STOPWORDS | {
            w for doc in self.documents if doc.key.startswith("rule:") for w in re.findall(r"[a-z]+", doc.text.lower())
        }
        # Short words the passages write in lower case ("all", "als" in "totals"): a message's lower-case
        # word is read as an abbreviation ("adhd", "tb") only if the sources never write it so.
        self._lower_case = set(LOWER_SHORT_WORD.findall("\n".join(doc.text for doc in self.documents)))
        # Words that occur in some focus name: the vocabulary of conditions, drugs and tests.
        # Curated entries are left out: their titles and lay triggers ("warning signs", "tummy")
        # are everyday words, not names.
        self._name_vocabulary = {
            w
            for doc in self.documents
            if not doc.key.startswith("rule:")
            for w in content(normal_words(" ".join((doc.focus, *doc.synonyms))))
            if w not in GENERIC and w not in PEOPLE
        }
        self._bm25: bm25s.BM25 | None = None
        if n:
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)

        # Focus names → the documents about that focus. Names with the same comparable form
        # share one focus, so a curated "Asthma" entry and imported asthma passages meet.
        self._foci: dict[str, list[int]] = {}  # focus key → its documents
        self._phrase_focus: dict[str, set[str]] = defaultdict(set)
        # The same names by their words in any order ("polyglucosan body disease, adult" is
        # "adult polyglucosan body disease"): bag of words → the phrases written that way.
        self._bag_phrases: dict[str, set[str]] = defaultdict(set)
        self._abbreviations: dict[str, set[str]] = defaultdict(set)  # "ALL" → foci, matched as written
        self._initials: dict[str, set[str]] = defaultdict(set)  # "ADHD" → foci whose passages use it
        self._short_initials: dict[str, set[str]] = defaultdict(set)  # "DVT": the same, three letters
        self._aliased: dict[str, set[str]] = defaultdict(set)  # a curator's alias, name_form → its foci
        # Curated entries on one topic written for different people ("Fever in adults", "Fever in
        # children"): by the title's other words, each entry by the group its title names.
        self._for_group: dict[str, dict[str, int]] = defaultdict(dict)
        for index, doc in enumerate(self.documents):
            topic, groups = _for_people(doc.title)
            if doc.key.startswith("rule:") and len(groups) == 1:
                self._for_group[topic][groups.pop()] = index
        # "Parasites - Hookworm", "Parasites - Taeniasis"...: a first part that many foci share is
        # their category, not a name of each (a question about "schistosomiasis parasites" is not
        # answered by the hookworm passage).
        heads = defaultdict(set)
        for doc in self.documents:
            head, dash, _ = doc.focus.partition(" - ")
            if dash:
                heads[head.strip()].add(doc.focus)
        categories = {head for head, foci in heads.items() if len(foci) >= CATEGORY_FOCI}
        # For ``respelled``: the long words of names as written, by every way of dropping a letter, and
        # the neighbouring pairs of words names have ("blood pressure").
        self._name_spellings: dict[str, set[str]] = defaultdict(set)
        self._name_pairs: set[tuple[str, str]] = set()
        self._one_word_names: set[str] = set()
        name_words: set[str] = set()
        for name in {name.lower() for doc in self.documents for name in (doc.focus, *doc.synonyms)}:
            written = re.findall(r"[a-z]+", name)
            self._name_pairs.update(itertools.pairwise(written))
            name_words.update(word for word in written if len(word) >= MIN_NAME_TYPO)
            if len(written) == 1:
                self._one_word_names.add(written[0])
        for word in name_words:
            for variant in one_letter_less(word):
                self._name_spellings[variant].add(word)
        # The same pairs in the curated entries' names: everyday words ("blood sugar"), where a short
        # word one letter out is a typo, not another condition's name.
        self._everyday_pairs: set[tuple[str, str]] = {
            pair
            for doc in self.documents
            if doc.key.startswith("rule:")
            for name in (doc.focus, *doc.synonyms)
            for pair in itertools.pairwise(re.findall(r"[a-z]+", name.lower()))
        }
        for index, doc in enumerate(self.documents):
            key = focus_key(doc)
            self._foci.setdefault(key, []).append(index)
            curated = doc.key.startswith("rule:")
            own = focus_variants(doc.focus) - categories
            if not curated:
                for initials in filter(None, map(initialism, own)):
                    if re.search(rf"\b{initials}\b", doc.text):
                        # The passage itself calls its topic by the name's initials: "ADHD" in the
                        # passages on attention deficit-hyperactivity disorder. Three letters only
                        # when all a question names ("what is dvt?"): too many mean something else
                        # to most people ("NHS", "RTA", "OCP").
                        (self._initials if len(initials) >= 4 else self._short_initials)[initials].add(key)
            for alias in doc.aliases:
                self._aliased[" ".join(name_form(normal_words(alias)))].add(key)
            for name in own | set(doc.synonyms):
                words = name_form(normal_words(name))
                written = name.strip()
                if len(words) == 1 and len(words[0]) <= 3 and not curated and name not in doc.aliases:
                    # (A curator's alias is a name as typed, whatever its length: "chf", "amd".)
                    # Short names are usually abbreviations ("ALL", "MS"): only as written, in
                    # capitals. The everyday ones count only in a passage's own name ("Amyotrophic
                    # lateral sclerosis (ALS)"): rare diseases' synonym lists reuse them ("STD" for
                    # spondylothoracic dysostosis, "CHF" for congenital hepatic fibrosis).
                    everyday = written in EVERYDAY_ABBREVIATIONS
                    if written.isupper() and len(written) >= 2 and (name in own or not everyday):
                        self._abbreviations[written].add(key)
                    continue
                if len(words) == 1 and written.isupper() and df.get(words[0], 0) / max(n, 1) >= SPECIFIC_DF:
                    # An acronym that is also an everyday word ("FAST" for stroke signs): as written.
                    self._abbreviations[written].add(key)
                    continue
                if not words or len(words) > MAX_PHRASE_WORDS or all(w in STOPWORDS | GENERIC | PEOPLE for w in words):
                    continue
                self._phrase_focus[" ".join(words)].add(key)
                if len(set(words) - STOPWORDS) >= 2:
                    self._bag_phrases[word_bag(words)].add(" ".join(words))

    def __len__(self) -> int:
        return len(self.documents)

    # --- the question ---------------------------------------------------------------------

    def named_spans(self, question: str) -> list[tuple[int, int, str, frozenset[str]]]:
        """Every focus name in the question as (start, end, name, focus keys), over its
        ``normal_words``: longest names first, no name inside another."""
        words = name_form(normal_words(question))
        spans = []
        taken = [False] * len(words)
        for size in range(min(MAX_PHRASE_WORDS, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                if any(taken[start : start + size]):
                    continue
                window = words[start : start + size]
                candidate = " ".join(window)
                keys = self._phrase_focus.get(candidate)
                if not keys and size >= 2 and window[0] not in STOPWORDS and window[-1] not in STOPWORDS | PREDICATES:
                    # Written in another order: the name as the knowledge base writes it. Not
                    # across words of the sentence ("hemophilia, was it acquired?" is not
                    # "acquired hemophilia"), nor a description after the name ("is glaucoma
                    # hereditary?" is not "hereditary glaucoma").
                    # An article or a possessive more is the same name ("ringing in *the* ears").
                    stops = sum(w in STOPWORDS and w not in DETERMINERS for w in window)
                    phrases = sorted(
                        p
                        for p in self._bag_phrases.get(word_bag(window), ())
                        if sum(w in STOPWORDS for w in p.split()) >= stops
                    )
                    if phrases:
                        candidate = phrases[0]
                        keys = {key for p in phrases for key in self._phrase_focus[p]}
                if keys:
                    spans.append((start, start + size, candidate, frozenset(keys)))
                    taken[start : start + size] = [True] * size
        # In a message written all in capitals, a capital word is only an abbreviation if it is
        # not an everyday word ("MY SON WAS..." is not Wiskott-Aldrich syndrome, WAS).
        shouted = not any(c.islower() for c in question)
        # The words that are not how the question asks: "what is als?" names nothing but "als".
        content = {w for w in words if w not in ASKING}
        raw = question.split()
        written = [word.strip(".,?!;:()'\"") for word in raw]
        # Worked out once: a message may repeat a word a thousand times ("tb tb tb...").
        alone = len(content) == 1 and bool(asked_as(question)[0])
        own_abbreviation = functools.cache(self._own_abbreviation)
        for number, word in enumerate(written):
            keys = self._abbreviations.get(word) if word.isupper() else None
            if keys and shouted and word.lower() in self._everyday:
                continue
            if not keys and word.isupper() and not shouted:
                keys = self._initials.get(word)
            following = written[number + 1].lower() if number + 1 < len(written) else ""
            bracketed = raw[number].startswith("(")
            upper = word.upper()
            if keys or not word.isalpha() or following in LIKE_NAMES:
                # In a longer name it may be another thing ("eec syndrome" is not necessarily the
                # EEC the sources spell out).
                pass
            elif len(word) >= 4 or bracketed:
                # "my son has adhd", "(cidp)", "(tb)": people type abbreviations in lower case.
                if self._lower_case_abbreviation(word):
                    keys = self._abbreviations.get(upper) or self._initials.get(upper)
            elif (
                alone
                and content <= set(normal_words(word))
                and upper not in EVERYDAY_ABBREVIATIONS
                # Alone, a word the sources also write in lower case somewhere still counts ("als"):
                # the topic's own passages must write it in capitals (``own_abbreviation``).
                and (
                    word.isupper() or (word.islower() and word not in self._everyday and not ROMAN_TYPE.fullmatch(word))
                )
            ):
                # Two or three letters on their own only when they are all a question names and
                # something is asked ("is tb contagious?", "what is dvt?"), and only for one topic
                # whose own passages write them: "ps i also have a rash" is not Proteus syndrome,
                # "what is oa" not ocular albinism, "is pd hereditary" two topics, "what is nhs?"
                # the health service.
                found = frozenset(self._abbreviations.get(upper) or self._short_initials.get(upper, ()))
                keys = found if own_abbreviation(upper, found) else None
            if keys:
                spans.append((-1, -1, phrase(word), frozenset(keys)))
        return spans

    def _other_kind(self, index: int, question_words: set[str], question_marks: set[str], exact: bool) -> bool:
        """Whether passage ``index`` is about another kind of what the question names: the opposite
        kind ("dyskeratosis congenita autosomal *recessive*" for "...autosomal dominant") or, for an
        imported passage the question does not name ``exact``ly (by its focus or one of its
        synonyms: "Silver syndrome" is a name of "Spastic paraplegia 17"), a numbered kind the
        question does not name ("Hemochromatosis type 4" for "hereditary hemochromatosis"). A
        curated entry is written for everyone who uses its name."""
        document = self.documents[index]
        focus = set(normal_words(document.focus))  # not its synonyms: the general passage lists both kinds
        if any(
            (opposite := OPPOSITES.get(word)) in focus and opposite not in question_words for word in question_words
        ):
            return True
        if exact or document.key.startswith("rule:"):
            return False
        return bool(arabic(kind_marks(normal_words(document.focus))) - arabic(question_marks))

    def _abbreviates(self, word: str, name: list[str], keys: Collection[str]) -> bool:
        """Whether ``word`` shortens the name just before it: its initials, or an abbreviation the
        sources give the same topic ("als" after "amyotrophic lateral sclerosis")."""
        if not word.isalpha():
            return False
        return word == initialism(" ".join(name)).lower() or bool(
            self._abbreviations.get(word.upper(), set()) & set(keys)
        )

    def _own_abbreviation(self, written: str, keys: Collection[str]) -> bool:
        """Whether short capitals stand for one topic only, whose own passages write it ("TB" in the
        tuberculosis passages). Many mean several things ("PD"), or a rare one the sources list
        as a synonym while people mean a common one ("OA": ocular albinism, not osteoarthritis)."""
        if len(keys) != 1:
            return False
        pattern = re.compile(rf"\b{re.escape(written)}\b")
        return any(pattern.search(self.documents[i].text) for key in keys for i in self._foci.get(key, ()))

    def _said_apart(self, word: str, ordered: list[str], focus: set[str]) -> bool:
        """Whether ``word`` is an everyday word the question says apart from the name: "restless legs at
        *night*" asks about restless legs, "coats *plus* syndrome" and "*clear* cell carcinoma" are other names."""
        if word not in self._everyday:
            return False
        places = [n for n, w in enumerate(ordered) if stem(w) == word]
        return bool(places) and not any(
            ordered[m] in focus for n in places for m in (n - 1, n + 1) if 0 <= m < len(ordered)
        )

    def _lower_case_abbreviation(self, word: str) -> bool:
        """A lower-case word that can only be an abbreviation: not an everyday word, never written so."""
        return (
            word.isalpha()
            and word.islower()
            and LOWER_SHORT_WORD.fullmatch(word) is not None
            and word not in self._everyday
            and word not in self._lower_case
            and not ROMAN_TYPE.fullmatch(word)  # "type iva" is a type, not IVA
        )

    def named_foci(self, question: str) -> dict[str, str]:
        """Focus key → the name the question used."""
        return foci_named(self.named_spans(question))

    def qualifiers(
        self,
        words: list[str],
        start: int,
        end: int,
        joined: frozenset[tuple[str, str]] = frozenset(),
        lay: bool = False,
        keys: Collection[str] = (),
    ) -> list[frozenset[str]]:
        """What makes the name at words[start:end] more specific than it is, each as the words
        of which a passage's names must contain one: a number, letter or type after or before it
        ("pontocerebellar hypoplasia type 5", "Q fever", "X-linked"), name words right in front
        of it ("juvenile amyotrophic lateral sclerosis", "normal pressure hydrocephalus"), a word
        hyphen-joined to it ("Rubinstein-Taybi syndrome", ``joined`` from ``hyphen_joined``), a
        name word joined right after it ("myoclonus-dystonia", "anemia of inflammation"), "like"
        ("dysautonomia like disorder"), or the people it is about ("in children", "adult"). A
        passage about the shorter name does not answer the longer one."""
        if start < 0:
            return []
        found: list[frozenset[str]] = []
        if words[end : end + 1] and self._abbreviates(words[end], words[start:end], keys):
            end += 1  # "amyotrophic lateral sclerosis (als)": the name again, shortened
        if lay:
            # A curated entry's lay words ("reflux", "Alzheimer's") next to a rare word name a
            # longer thing: "vesicoureteral reflux", "Alzheimer's caregiving".
            around = words[max(0, start - 1) : start] + words[end : end + 1]
            # (Not an ordinary word: "hayfever *tablets*", "what are piles *exactly*". An everyday word
            # still can: "*tummy* flu" is not the flu, a "*sweat* rash" not a fever.)
            found += [frozenset([w]) for w in around if self._telling(w, min_length=5) and w not in AROUND_A_NAME]
        after = words[end : end + 2]
        if lay and after and after[0] in SERIOUS_KINDS and not self._asks_whether(words, start, end):
            found.append(frozenset([after[0]]))  # "thyroid cancer" is not the thyroid entry
        elif lay and after and after[0] in SYNDROME and start >= 1 and self._names_a_kind(words[start - 1]):
            # "sick sinus syndrome" is not the sinusitis entry's "sinus" ("vasovagal syndrome" is
            # the fainting entry's "vasovagal"): the word in front must be among the entry's names.
            found.append(frozenset([words[start - 1]]))
        elif after and (is_identifier(after[0]) or is_letter(after[0]) or (words[end - 1], after[0]) in joined):
            found.append(frozenset([after[0]]))
        elif len(after) == 2 and after[0] == "type" and (is_identifier(after[1]) or is_letter(after[1], frozenset())):
            found.append(frozenset([after[1]]))
        elif (
            after
            and after[0] in ("in", "for")
            and (group := self._population_after(words, end + 1))
            and group not in GENERAL_GROUPS
        ):
            found.append(POPULATIONS[group])
        elif len(after) == 2 and after[0] == "of" and (self._qualifies(after[1]) or self._unknown_name(after[1])):
            found.append(frozenset([after[1]]))
        elif len(after) == 2 and after[0] == "with" and not lay and self._unknown_name(after[1]):
            # A word the knowledge base has never seen after "with" makes a longer name; a known one
            # is the thing with something else ("copd with emphysema": see joined_topic), and a
            # curated entry is written for everyone ("paracetamol with lemsip").
            found.append(frozenset([after[1]]))
        elif len(after) == 2 and after[0] == "like" and after[1] in LIKE_NAMES:
            found.append(frozenset(["like"]))
        elif (
            after
            and (self._qualifies(after[0]) or self._unknown_name(after[0]))
            and after[0] not in SCAFFOLDING
            and after[0] not in AROUND_A_NAME  # "paracetamol *together*", "can stress *make* ibs flare"
            and after != LEADS_TO  # "what can alagille syndrome lead to?" asks what it does
        ):
            found.append(frozenset([after[0]]))
        staged = start >= 2 and words[start - 2] in HOW_FAR  # "stage 3 ovarian cancer"
        aged = words[start] in AGE_UNITS  # "my 3 *year old has a temperature*": an age, not a type 3
        if (
            start >= 1
            and not staged
            and not aged
            and (
                is_identifier(words[start - 1])
                or is_letter(words[start - 1])
                or (words[start - 1], words[start]) in joined
            )
        ):
            found.append(frozenset([words[start - 1]]))
            return found
        if (
            start >= 2
            and words[start - 1] == "of"
            and (self._rare_modifier(words[start - 2]) or self._unknown_name(words[start - 2]))
        ):
            found.append(frozenset([words[start - 2]]))  # "neurological sequelae of lupus"
            return found
        if start >= 2 and words[start - 1] == "linked" and is_letter(words[start - 2]):
            found.append(frozenset([words[start - 2]]))  # "X-linked hypophosphatemia"
            return found
        if (
            start >= 2
            and words[start - 2] == "type"
            and is_letter(words[start - 1], frozenset())
            and words[end : end + 1]
            and words[end] in LIKE_NAMES
        ):
            # "type A insulin resistance syndrome" is another syndrome; "type A flu" is the flu.
            found.append(frozenset([words[start - 1]]))
            return found
        index = start - 1
        # A name has a few words in front of it at most: "parasites parasites ... parasites" is
        # not one long name (and would cost a qualifier per word for every passage checked).
        while index >= max(0, start - MAX_QUALIFIERS) and words[index] not in QUESTION_VERBS:
            if words[index] in AROUND_A_NAME or (index >= 1 and words[index - 1] in HOW_FAR):
                break  # "to *lower* cholesterol", "a *normal* hba1c", "*stage 3* ovarian cancer"
            group = population(words[index])
            if group:
                found.append(POPULATIONS[group])
            elif self._qualifies(words[index]) or self._unknown_name(words[index]) or self._rare_modifier(words[index]):
                found.append(frozenset([words[index]]))
            else:
                break
            index -= 1
        return found

    @staticmethod
    def _named_alone(words: list[str], start: int) -> bool:
        """Whether the name from words[start] on is asked about as it is, with only asking words
        in front ("what are the stages of chronic kidney disease?", not "nutrition for advanced
        chronic..." or "bone disorder in chronic...")."""
        return start >= 0 and all(
            (word in ASKING or word in STAGES) and word not in LIKE_NAMES for word in words[max(0, start - 2) : start]
        )

    @staticmethod
    def _asks_whether(words: list[str], start: int, end: int) -> bool:
        """Whether the serious kind after words[start:end] is what is asked about the thing, not
        part of its name: "is my breast lump cancer?", "smoking cancer risk"."""
        if words[end + 1 : end + 2] in (["risk"], ["risks"]):
            return True
        before = words[max(0, start - 3) : start]
        # "is my breast lump cancer?" asks about the lump; "could it be thyroid cancer?" names a cancer.
        return any(w in ("is", "are", "be") for w in before) and not any(
            w in ("it", "this", "that", "there") for w in before
        )

    @staticmethod
    def _names_a_kind(word: str) -> bool:
        """A word in front of a name that can make it another thing ("sick" sinus syndrome), not one
        of how a question is asked ("what is", "my", "severe")."""
        return len(word) >= 3 and word.isalpha() and word not in ASKING

    def _unknown_name(self, word: str) -> bool:
        """A word the knowledge base has never seen, next to a name it knows: part of a longer
        name it does not know ("Meier-Gorlin syndrome", "SUNCT headache"). Only with a real
        corpus: the curated entries alone do not know most ordinary words."""
        if self._n < 200 or word in self._df or len(word) < 4 or not word.isalpha():
            return False
        ordinary = (STOPWORDS, GENERIC, PEOPLE, INTENSITY, QUESTION_VERBS, SCAFFOLDING, LINKING)
        return not any(word in group for group in ordinary)

    def _breaks_name(self, words: list[str], name_words: set[str]) -> bool:
        """Whether the question puts a word of its own inside the focus's name: "Gorlin Chaudhry
        Moss syndrome" is not "Gorlin syndrome", "Miller Fisher syndrome" not "Miller syndrome"."""
        inside = [i for i, word in enumerate(words) if word in name_words]
        return any(
            words[i] not in STOPWORDS and words[i] not in name_words
            for start, end in itertools.pairwise(inside)
            if end - start <= 4
            for i in range(start + 1, end)
        )

    def _extends_name(self, index: int, words: list[str], name_words: set[str]) -> bool:
        """Whether the question puts a rare or unknown word the passage never uses right before or
        after the words it shares with the passage's focus: "lichen planus *pigmentosus*" is a longer
        name than "oral lichen planus" ("Farber *lipogranulomatosis*" is another name of the Farber's
        disease passage, which says so)."""
        inside = [i for i, word in enumerate(words) if word in name_words and word not in STOPWORDS]
        if not inside:
            return False
        edges = [words[i] for i in (inside[0] - 1, inside[-1] + 1) if 0 <= i < len(words)]
        return any(
            word not in name_words
            and (self._rare_modifier(word) or self._unknown_name(word))
            and not self.mentions(index, word)
            for word in edges
        )

    @staticmethod
    def joined_topic(words: list[str], spans: Sequence[tuple[int, int, str, frozenset[str]]]) -> set[str]:
        """The words of another topic the question joins to a name it asks about with "and" or
        "with": "smoking and the *digestive system*", "prescription and *illicit* drug *abuse*",
        "myopathy with *deficiency* of *iron* *sulfur*...". A passage that never uses them answers
        half of the question ("Smoking and the digestive system" is not the quitting entry's). One
        word alone is more often a symptom said with the topic ("headache and nausea", "migraine with
        aura") than a topic: only two or more count. Words of the question's other names are left to
        the name checks."""
        in_names = {i for start, end, _, _ in spans if start >= 0 for i in range(start, end)}

        def topic(places: Iterable[int]) -> set[str]:
            found = set()
            for place in places:
                word = words[place]
                if place in in_names or (word in STOPWORDS and word not in DETERMINERS and word != "of"):
                    break  # "deficiency *of* iron" goes on
                if word.isalpha() and len(word) >= 3 and word not in ASKING and word not in CHAT_WORDS:
                    found.add(word)
            return found if len(found) >= 2 else set()

        joined: set[str] = set()
        for start, end, _, _ in spans:
            if start < 0:
                continue
            if words[end : end + 1] in (["and"], ["with"]):
                joined |= topic(range(end + 1, min(len(words), end + 1 + MAX_QUALIFIERS)))
            if start >= 1 and words[start - 1] == "and":
                joined |= topic(range(start - 2, max(-1, start - 2 - MAX_QUALIFIERS), -1))
        return joined

    @staticmethod
    def _name_continues(words: list[str], end: int) -> list[str]:
        """The content words right after a name, up to the first word that only asks something
        ("prevent diabetes problems: keep your *heart* and *blood* vessels healthy")."""
        ordinary = (GENERIC, SCAFFOLDING, QUESTION_VERBS, INTENSITY, LINKING, PEOPLE)
        found = []
        for word in words[end:]:
            if any(word in group for group in ordinary) or len(found) == 3:
                break
            if word not in STOPWORDS:
                found.append(word)
        return found

    def _subtitle_fits(self, index: int, name: str, tail: list[str]) -> bool:
        """A leaflet titled "Topic: subtitle" answers its topic's name, unless the question goes
        on with another subtitle ("Kidney Failure: Eat Right…" does not answer "kidney failure:
        choosing a treatment")."""
        topic, colon, subtitle = self.documents[index].focus.partition(": ")
        if not colon or not tail or " ".join(name_form(normal_words(topic))) != name:
            return True
        own = set(normal_words(subtitle))
        return all(word in own for word in tail)

    def _telling(self, word: str, min_length: int = 4) -> bool:
        """A word that picks out few passages and is not how questions are asked. Only with a
        real corpus (a few curated entries make every word rare)."""
        return (
            self._n >= 200
            and len(word) >= min_length
            and word.isalpha()
            and self.distinctive(word)
            and word not in ASKING
        )

    def _rare_modifier(self, word: str) -> bool:
        """A rare word in front of a name narrows it ("basilar migraine", "paranasal sinus"):
        a word in under RARE_MODIFIER_DF of the passages that is not an everyday one."""
        if self._n < 200 or len(word) < 5 or not word.isalpha():
            return False
        ordinary = (STOPWORDS, GENERIC, PEOPLE, INTENSITY, QUESTION_VERBS, SCAFFOLDING, LINKING)
        return 0 < self._df.get(word, 0) / self._n < RARE_MODIFIER_DF and not any(word in group for group in ordinary)

    @staticmethod
    def _population_after(words: list[str], index: int) -> str:
        """The group named at words[index], past an article or possessive ("in a newborn")."""
        while index < len(words) and words[index] in ("a", "an", "the", "my", "our", "your", "their"):
            index += 1
        return population(words[index]) if index < len(words) else ""

    def _qualifies(self, word: str) -> bool:
        if (
            word in STOPWORDS
            or word in LINKING
            or word in PEOPLE
            or word in GENERIC
            or word in INTENSITY
            or len(word) < 3
        ):
            return False
        return word in self._name_vocabulary

    @staticmethod
    def refers_back(question: str) -> bool:
        """Whether a question points back to what came before: "it", "that", "she", "his"."""
        return bool((REFERRING | POINTING_BACK) & set(normal_words(question)))

    @staticmethod
    def own_words(question: str) -> set[str]:
        """A question's words that are not how it asks or what it points back to: "help with my
        *diet*", nothing in "how is it treated?"."""
        how = set(tokens(asked_as(question)[1]))
        return {
            w
            for w in normal_words(question)
            if w not in ASKING and w not in REFERRING and w not in CHAT_WORDS and w not in how and w.isalpha()
        }

    @staticmethod
    def speaks_of(document: Document, words: Collection[str]) -> bool:
        """Whether ``document`` says each of ``words``, or a word for the same thing ("eat": "diet")."""
        said = set(normal_words(f"{document.title} {document.text}"))
        return all(word in said or bool(SAME_THING.get(word, frozenset()) & said) for word in words)

    def names_nothing(self, question: str) -> bool:
        """True for a follow-up with no topic of its own ("and how is it treated?"): no focus
        name, and no word that is rare in the knowledge base or unknown to it."""
        if self.named_spans(question):
            return False
        words = normal_words(question)
        if any(b in CONDITION_HEADS and a not in ASKING for a, b in itertools.pairwise(words)):
            return False  # "what lowers the risk of heart disease?" has a topic, if an unknown one
        refers = bool(REFERRING & set(words)) or words[:1] == ["and"] or FOLLOWING_ON.match(question) is not None
        own = self.own_words(question)
        if not refers and len(own) >= 2:
            # "how do i stop my dad falling at home?" is a new question, even after one on dementia;
            # "what should i eat?" may still be about the topic before it.
            return False
        return not any(
            w not in self._df or (w in self._name_vocabulary and self.distinctive(w))
            for w in tokens(question)
            if w not in GENERIC
        )

    def _taken_unknowns(self, question: str) -> set[str]:
        """Words the knowledge base has never seen, said as something taken ("can i take *zorbitrexal*
        for my asthma", "i started *glucobrill*"): a medicine no passage speaks of."""
        return (
            {
                stem(match.group(1).lower())
                for match in TAKEN.finditer(question)
                if stem(match.group(1).lower()) not in self._df and match.group(1).lower() not in STOPWORDS
            }
            if self._n >= 200
            else set()
        )

    def specific_words(self, question: str) -> set[str]:
        """Words a passage must mention to answer the question: drug-like names, and words that
        are both rare in the knowledge base and part of some focus name (a condition, drug or
        test: "ibuprofen", "warfarin"), not merely rare ("exactly", "told"). Words the knowledge
        base has never seen are not counted (typos, names), except those shaped like a condition's
        name ("trichuriasis"): no passage can answer a question about it."""
        out = set()
        for word in tokens(question):
            if word in GENERIC or word in PEOPLE or word in QUESTION_VERBS or word in INTENSITY or word in LINKING:
                continue
            if word in PLACES:
                continue
            if word in PREDICATES:
                continue  # "was it acquired?": a passage need not use the word to answer
            if word.isdigit():
                continue
            if word in SCAFFOLDING and not DRUG_LIKE.search(word):
                continue  # "why does it matter", "does it need an X-ray"
            count = self._df.get(word, 0)
            drug_like = len(word) >= 6 and DRUG_LIKE.search(word) is not None
            rare = count > 0 and self._n >= 200 and count / self._n < SPECIFIC_DF and word in self._name_vocabulary
            # A condition's name the knowledge base has never seen: no passage of it answers.
            unknown_condition = count == 0 and self._n >= 200 and len(word) >= 7 and CONDITION_LIKE.search(word)
            if drug_like or rare or unknown_condition:
                out.add(word)
        return out | self._taken_unknowns(question)

    def rare_words(self, question: str) -> set[str]:
        """The question's telling words that belong to names (of conditions, drugs, tests) or
        look like one: "vesicoureteral", not "exactly", "told" or "hereditary"."""
        return {
            w
            for w in tokens(question)
            if self._telling(w) and w not in PLACES and (w in self._name_vocabulary or CONDITION_LIKE.search(w))
        }

    @staticmethod
    def _inside_longer_names(words: list[str], qualified: list[tuple[int, int, list[frozenset[str]]]]) -> set[int]:
        """The spans (by their place in ``qualified``) that are another name's qualifier, at most
        two words from it: the question names the longer thing ("kidney disease of diabetes"),
        not this one. A name asked twice ("parasites parasites") does not qualify itself. Two
        names that qualify each other are one longer name: the longer span stays ("type 1 and
        type 2 diabetes" is the guide to both, not diabetes in general)."""
        by_start: dict[int, list[int]] = defaultdict(list)
        by_end: dict[int, list[int]] = defaultdict(list)
        for number, (start, end, _) in enumerate(qualified):
            if start >= 0:
                by_start[start].append(number)
                by_end[end].append(number)
        qualifies = set()  # (qualifier's number, qualified name's number)
        for owner, (start, end, extra) in enumerate(qualified):
            if start < 0 or not extra:
                continue
            qualifying = set().union(*extra)
            own = set(words[start:end])
            after = [n for gap in range(3) for n in by_start.get(end + gap, ())]
            before = [n for gap in range(3) for n in by_end.get(start - gap, ())]
            for number in after + before:
                other_start, other_end, _ = qualified[number]
                other = set(words[other_start:other_end])
                if other != own and other & qualifying:
                    qualifies.add((number, owner))

        def size(number: int) -> int:
            return qualified[number][1] - qualified[number][0]

        return {
            number for number, owner in qualifies if not ((owner, number) in qualifies and size(number) > size(owner))
        }

    def distinctive(self, word: str) -> bool:
        """A word that picks out few passages ("leukemia", not "heart")."""
        count = self._df.get(word, 0)
        # A small knowledge base (the curated entries alone) has too few passages for a 2 % cut.
        return 0 < count / self._n < (DISTINCTIVE_DF if self._n >= 200 else 0.25)

    def is_specific(self, word: str) -> bool:
        """A word that names something, for the faithfulness gate: distinctive, or never seen
        in the knowledge base at all (an invented word, or a name no passage uses)."""
        return word not in self._df or self.distinctive(word)

    def has_name(self, index: int, name: str, extra: list[frozenset[str]]) -> bool:
        """Whether one of the passage's names is ``name`` with all of ``extra`` (one word of
        each set): "medullary cystic kidney disease 1", not a general entry listing type 1
        among its synonyms."""
        if not extra:
            return True
        return any(
            f" {name} " in own and all(any(f" {w} " in own for w in words) for words in extra)
            for own in self._name_list[index]
        )

    def for_the_people(self, index: int, question_groups: set[str]) -> list[int]:
        """The curated entry on the same topic as entry ``index`` written for the people the
        question is about: "Fever in children" for "my son is 6 and has a fever", which the
        trigger "fever" of "Fever in adults" found."""
        entries = self._for_group.get(_for_people(self.documents[index].title)[0], {})
        return [entries[group] for group in sorted(question_groups) if group in entries]

    def same_kind(
        self, index: int, question_ids: set[str], question_groups: set[str], question_words: Collection[str] = ()
    ) -> bool:
        """False when the passage's names number or place the topic differently from the
        question: "11-beta-hydroxylase" against "21-hydroxylase", adults against childhood."""
        names = self._names[index].split()
        # A curated entry's numbers are in its title ("Type 2 diabetes"); its triggers' are what
        # people say ("38 degrees"), not a kind of the topic.
        curated = self.documents[index].key.startswith("rule:")
        numbered = normal_words(self.documents[index].title) if curated else names
        ids = {w for w in numbered if is_identifier(w)}
        numbers = question_ids - {"non"}
        if ids and numbers and not ids & numbers:
            return False
        groups = {group for w in names if (group := population(w))}
        if groups and question_groups and not groups & question_groups:
            return False
        # "non-Hodgkin lymphoma" is not "Hodgkin lymphoma", either way round.
        if "non" in question_ids:
            return "non" in names
        focus = normal_words(self.documents[index].focus)
        negated = {after for before, after in itertools.pairwise(focus) if before == "non"}
        return not negated & question_words

    def respelled(self, question: str) -> str:
        """``question`` with misspelt asking words put right ("the simptoms of" → "the symptoms
        of"): a word the knowledge base has (almost) never seen, one letter from exactly one of them.
        Names are left alone: an unknown name must stay unknown, so nothing answers it wrongly."""
        if self._n < 200:
            return question

        def fix(match: re.Match[str]) -> str:
            word = match.group()
            lower = word.lower()
            if len(lower) < 5 or lower in STOPWORDS or self._df.get(stem(lower), 0) >= RARE_SPELLING:
                return word
            found = {right for variant in one_letter_less(lower) for right in _SPELLING_INDEX.get(variant, ())}
            if len(found) > 1:  # "symtoms": a letter missing from "symptoms", not one changed in "symptom"
                found = {right for right in found if lower in one_letter_less(right)} or {
                    right for right in found if len(right) == len(lower)
                }
            return found.pop() if len(found) == 1 else word

        return self._names_respelled(re.sub(r"[A-Za-z]+", fix, question))

    def _names_respelled(self, question: str) -> str:
        """A word the sources never use, one edit from exactly one word of a name (its first
        letter kept), put right when it stands next to that word's neighbour in the name ("high blood
        presure" is high blood pressure) or the word is a common one-word name ("astma"). Otherwise it is
        left as typed: an unknown name stays unknown."""
        words = re.findall(r"[A-Za-z]+|[^A-Za-z]+", question)
        lower = [w.lower() for w in words]
        letters = [i for i, w in enumerate(lower) if w.isalpha()]
        for place, i in enumerate(letters):
            typed = lower[i]
            # Never seen at all: a word a passage or two use is usually a rare name of its own ("frasier
            # syndrome" is not Fraser syndrome, "pdgfra" is not "pdgfrb").
            if len(typed) < MIN_NAME_TYPO or typed in STOPWORDS or stem(typed) in self._df:
                continue
            before = lower[letters[place - 1]] if place > 0 else ""
            after = lower[letters[place + 1]] if place + 1 < len(letters) else ""
            found = {
                right
                for variant in one_letter_less(typed)
                for right in self._name_spellings.get(variant, ())
                # People get a name's first letter right, and a first letter can be a prefix that
                # makes another condition ("amyotonia congenita" is not myotonia congenita).
                if typed[0] == right[0]
                and one_edit_apart(typed, right)
                and (
                    # Next to the rest of its name, a word of six letters or more: a five-letter word of a
                    # name is one letter from too many others ("tietze syndrome" is not Tietz syndrome).
                    (
                        len(right) > MIN_NAME_TYPO
                        and ((before, right) in self._name_pairs or (right, after) in self._name_pairs)
                    )
                    # ...or of five, in a curated entry's everyday name ("blood suger" is blood sugar).
                    or (before, right) in self._everyday_pairs
                    or (right, after) in self._everyday_pairs
                    or (right in self._one_word_names and self._df.get(stem(right), 0) >= COMMON_NAME_PASSAGES)
                )
            }
            if len(found) > 1:  # a typo the sources share ("preasure") loses to the word they use
                most = max(self._df.get(stem(right), 0) for right in found)
                found = {right for right in found if self._df.get(stem(right), 0) == most}
            if len(found) == 1:
                words[i] = found.pop()
        return "".join(words)

    def unbracketed(self, question: str) -> str:
        """``question`` without a bracket inside a name, when only that way does it name something:
        "gum (periodontal) disease" is gum disease. A bracket that names something itself stays
        ("my son has (adhd) and...")."""
        bare = MID_NAME_BRACKET.sub("", question)
        if bare == question or self.named_spans(question) or not self.named_spans(bare):
            return question
        return bare

    def _title_names(self, index: int, name: str) -> bool:
        """Whether a curated entry's title has every word of ``name``."""
        document = self.documents[index]
        return document.key.startswith("rule:") and set(name.split()) <= set(name_form(normal_words(document.title)))

    def _curated_only(self, key: str) -> bool:
        return all(self.documents[i].key.startswith("rule:") for i in self._foci[key])

    def mentions_focus(self, index: int, name: str) -> bool:
        """Whether a passage talks about a focus: every telling word of its name is in it
        ("kidney disease" is mentioned by "damage the kidneys")."""
        words = [w for w in content(name.split()) if w not in GENERIC and w not in PEOPLE] or name.split()
        return all(self.mentions(index, word) for word in words)

    def _talks_of(self, index: int, name: str, named: dict[str, str]) -> bool:
        """Whether a passage talks about a focus the question named, by the name the question
        used or by the focus's own ("RA" is talked of as "rheumatoid arthritis")."""
        return self.mentions_focus(index, name) or any(
            self.mentions_focus(index, key) for key, used in named.items() if used == name
        )

    def _speaks_of_family(self, index: int) -> bool:
        return any(self.mentions(index, word) for word in FAMILY_WORDS)

    def mentions(self, index: int, name: str) -> bool:
        return f" {name} " in self._texts[index]

    # --- search -----------------------------------------------------------------------------

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        """The best passages for ``question``, best first; empty when nothing answers it."""
        if self._bm25 is None or about_a_pet(question):
            return []  # the sources are about people's health: "my puppy has diarrhoea" is for a vet
        question = self.unbracketed(self.respelled(question))
        query = tokens(question)
        if not query:
            return []
        scores = self._bm25.get_scores(query)
        spans = self.named_spans(question)
        kind, how = asked_as(question, [name for _, _, name, _ in spans])
        named = foci_named(spans)
        specific = self.specific_words(question)

        normalised = normal_words(question)
        asked_words = set(normalised)
        ages = ages_in(question)
        question_ids = {w for w in asked_words if is_identifier(w)} - set(ages)
        if "non" in asked_words:
            question_ids.add("non")
        question_groups = {group for w in asked_words if (group := population(w))}
        if any(ages.values()):
            question_groups.add("children")  # "my son is 6 and has a fever"
        if named:
            words = name_form(normalised)
            joined = hyphen_joined(question)
            candidates = set()
            primary = set()  # passages whose own focus is the name the question used
            seen_spans = set()
            qualified = [
                (start, end, self.qualifiers(words, start, end, joined, all(map(self._curated_only, keys)), keys))
                for start, end, _, keys in spans
            ]
            inside = self._inside_longer_names(words, qualified)
            for number, ((start, end, name, keys), (_, _, extra)) in enumerate(zip(spans, qualified, strict=True)):
                if number in inside:
                    continue  # "kidney disease of *diabetes*": not a question about diabetes
                tail = self._name_continues(words, end) if start >= 0 else []
                signature = (name, frozenset(extra), tuple(tail))
                if signature in seen_spans:
                    continue  # the same name asked again the same way adds nothing
                seen_spans.add(signature)
                found_by_key = {}
                for key in keys:
                    fits = [
                        i
                        for i in self._foci[key]
                        if i not in self._referrals
                        and self.same_kind(i, question_ids, question_groups, asked_words)
                        and self._subtitle_fits(i, name, tail)
                    ]
                    found = [i for i in fits if self.has_name(i, name, extra)]
                    if question_groups and not extra:
                        # An entry written for other people points to its sibling for these ones.
                        found += [
                            other
                            for i in self._foci[key]
                            if i not in fits and self.documents[i].key.startswith("rule:")
                            for other in self.for_the_people(i, question_groups)
                            if other not in found
                        ]
                    lasting = [words for words in extra if words <= CHRONIC]
                    if not found and lasting and len(lasting) == len(extra) and self._named_alone(words, start - 1):
                        # No passage is named "chronic kidney disease": the one on kidney disease
                        # answers if it speaks of chronic kidney disease itself.
                        rest = [words for words in extra if words not in lasting]
                        found = [
                            i
                            for i in fits
                            if self.has_name(i, name, rest)
                            and all(f" {w} {name} " in self._texts[i] for words in lasting for w in words)
                        ]
                    if not found and extra and all(words in PEOPLE_GROUPS for words in extra):
                        # Nothing is named for these people ("dehydration in a baby"): a curated
                        # entry, written for everyone, answers when it speaks of them itself, more
                        # than in passing (the shingles entry's "avoid newborns" is not about children).
                        found = [
                            i
                            for i in fits
                            if self.documents[i].key.startswith("rule:")
                            and all(sum(self._texts[i].count(f" {w} ") for w in words) >= 2 for words in extra)
                        ]
                    candidates.update(found)
                    found_by_key[key] = found
                # Named exactly: passages whose own focus is the name; curated entries by their
                # triggers (their curators declared them), unless passages on the very thing named
                # answer this kind of question and the entry's title does not name it: "atrial
                # fibrillation" is a trigger of the palpitations entry and the topic of passages of
                # its own; "how is atopic dermatitis treated?" is still the eczema entry's, as no
                # passage on atopic dermatitis speaks of treatment.
                # A curator's alias names its topic as exactly as the topic's own name ("afib").
                exact = {key for key in found_by_key if key == name or key in self._aliased.get(name, ())}
                named_here = [
                    i
                    for key in exact
                    for i in found_by_key[key]
                    if not kind or self.documents[i].question_type in (kind, "")
                ]
                for key, found in found_by_key.items():
                    primary.update(
                        i
                        for i in found
                        if key in exact
                        or (
                            self.documents[i].key.startswith("rule:")
                            # A curator's alias says which topic the name is; an entry listing the
                            # same word ("afib" for palpitations) does not take it over.
                            and (not (named_here or name in self._aliased) or self._title_names(i, name))
                        )
                    )
            # Every specific word not part of a focus name must be mentioned, and so must every
            # other focus the question names by a reviewed source's name (diabetes *and* kidney
            # disease). Names that only a curated entry's lay triggers give ("what should I eat")
            # rank the passages that mention them first but are not required.
            focus_words = {w for name in named.values() for w in name.split()}
            required_words = specific - focus_words
            strict_names = {name for key, name in named.items() if not self._curated_only(key)}
            # A curated entry is found by lay words ("reflux", "gas"); a rare word the question
            # adds that the entry never uses names another thing ("vesicoureteral reflux").
            named_words = {w for _, _, name, _ in spans for w in name.split()}
            rare = self.rare_words(question) - named_words
            other_topic = self.joined_topic(words, spans)
            hits, coverage = [], {}
            question_marks = kind_marks(normalised)
            for i in candidates:
                if not all(self.mentions(i, word) for word in required_words):
                    continue
                exact = any(
                    not extra and f" {name} " in self._name_list[i]
                    for (_, _, name, _), (_, _, extra) in zip(spans, qualified, strict=True)
                )
                if self._other_kind(i, asked_words, question_marks, exact):
                    continue
                if self.documents[i].key.startswith("rule:") and not all(self.mentions(i, w) for w in rare):
                    continue
                if not all(self.mentions(i, w) for w in other_topic):
                    continue  # "smoking and the digestive system": half the question
                own = focus_key(self.documents[i])
                own_names = {name for key, name in named.items() if key == own}
                others = set(named.values()) - own_names
                if not all(self._talks_of(i, name, named) for name in strict_names & others):
                    continue
                coverage[i] = sum(self._talks_of(i, name, named) for name in others)
                hits.append(i)
            # What the question asks about besides its names and how it asks ("surgery", "diet").
            asked = (set(query) - named_words - ASKING - set(tokens(how))) | (set(query) & SPREADING)
            return self._rank(
                hits,
                scores,
                kind,
                focus_matched=True,
                limit=limit,
                coverage=coverage,
                primary=primary,
                asked=asked,
                # A cancer spreads in the body, not from person to person: its passages' "spread" is not an answer.
                spreading=bool(set(query) & SPREADING) and not SERIOUS_KINDS & set(query),
            )

        # No focus named: a passage whose focus words are mostly in the question, scoring well,
        # and whose names cover the question's own name-like words ("tetrasomy 18p" is not
        # "tetrasomy X", "myoclonus-dystonia" is not "myoclonus").
        top = np.argsort(-scores)[: max(limit * 10, 30)]
        query_words = set(query)
        unexplained = {
            w for w in query_words if is_identifier(w) or (w in self._name_vocabulary and self.distinctive(w))
        }
        ordered = name_form(normalised)
        marks = kind_marks(normalised)
        joined = hyphen_joined(question)
        hits = []
        for i in top:
            if scores[i] <= 0:
                break
            if i in self._referrals:
                continue
            focus_all = normal_words(self.documents[i].focus)  # the focus's words, each read once
            focus_tokens = set(content(focus_all))
            # "Heart attack warning signs" is about heart attacks: "warning" is how it is asked.
            focus_words = focus_tokens - GENERIC - WARNING
            if not focus_words:
                continue
            if kind_marks(focus_all) - marks:
                continue  # "type 2" is not "type 1", "type V" not "type I"
            if not self.same_kind(int(i), question_ids, question_groups, asked_words):
                continue
            if any(population(w) for w in focus_words - query_words):
                continue  # "adult-onset vitelliform macular dystrophy" does not answer the general name
            if any(
                f" {w} " not in self._names[i] and not self._said_apart(w, ordered, set(focus_all)) for w in unexplained
            ):
                continue  # the question names something this passage's focus does not
            if any(OPPOSITES.get(w) in query_words for w in focus_words - query_words):
                continue  # "left heart" is not "right heart"
            if SERIOUS_KINDS & focus_tokens - query_words:
                continue  # "Gallbladder Cancer" does not answer "what is a gallbladder attack?"
            if "like" in focus_words - query_words:
                continue  # "Marden-Walker-like syndrome" does not answer "Marden-Walker syndrome"
            if any(
                (f" {a} " in self._names[i] and not self.mentions(i, b))
                or (f" {b} " in self._names[i] and not self.mentions(i, a))
                for a, b in joined
            ):
                continue  # "Gerstmann-Straussler-Scheinker disease" is not "Gerstmann syndrome"
            if self._extends_name(int(i), ordered, set(focus_all)):
                continue  # "lichen planus pigmentosus" is not "oral lichen planus"
            if self._breaks_name(ordered, set(focus_all)):
                continue  # "Gorlin Chaudhry Moss syndrome" is not "Gorlin syndrome"
            shared = focus_words & query_words
            if len(shared) / len(focus_words) < PARTIAL_FOCUS_SHARE or not any(map(self.distinctive, shared)):
                continue
            if any(self._df.get(w, 0) / self._n < DISTINCTIVE_DF for w in focus_words - query_words):
                continue  # "adenosine deaminase deficiency" is not "adenosine monophosphate deaminase deficiency"
            if not all(self.mentions(int(i), word) for word in specific):
                continue
            hits.append(int(i))
        return self._rank(hits, scores, kind, focus_matched=False, limit=limit)

    def _rank(
        self,
        indexes: list[int],
        scores: np.ndarray,
        kind: str,
        focus_matched: bool,
        limit: int,
        coverage: dict[int, int] | None = None,
        primary: set[int] | None = None,
        asked: Collection[str] = (),
        spreading: bool = False,
    ) -> list[Hit]:
        """``indexes`` best first: see ``key``. ``asked``: the question's words besides the names;
        ``spreading``: it asks whether or how it spreads ("is TB contagious?")."""

        def type_matched(i: int) -> bool:
            return bool(kind) and self.documents[i].question_type == kind

        def key(i: int) -> tuple:
            doc = self.documents[i]
            # The question's type first; a curated entry (no type) answers any type of its topic
            # as well as a passage written for exactly that type, and BM25 decides between them:
            # curated entries are written for the way people ask.
            # Without a passage of its type, one that uses the question's own words ("how is TB
            # spread?": the passages that say how it spreads) and the overview (the outlook of a
            # topic with none) come first; a question of no known type is left to BM25.
            if type_matched(i) or not doc.question_type:
                type_rank = 3
            elif spreading:
                # "Is TB contagious?": a passage that says how it spreads, then the overview.
                says_it = any(self.mentions(i, w) for w in SPREADING)
                overview = doc.question_type == "information"
                type_rank = (2 + overview / 2) if says_it else int(overview)  # below a passage of the type (3)
            elif kind and doc.question_type in NEAREST_TYPES.get(kind, ()) and self._speaks_of_family(i):
                type_rank = 2.5  # "is bowel cancer hereditary?": who is at risk, where it speaks of families
            elif kind:
                type_rank = any(self.mentions(i, w) for w in asked) + (doc.question_type == "information")
            else:
                type_rank = 0
            # A passage that also mentions the question's other topics (diabetes *and* kidneys)
            # beats one about either alone.
            # Then a passage named exactly as asked beats one that lists the name as a synonym
            # (``primary``, where curated entries count as named by their triggers).
            named_exactly = i in (primary or ())
            return (
                (coverage or {}).get(i, 0),
                named_exactly,
                type_rank,
                self._answers[i],
                float(scores[i]),
                doc.priority,
            )

        ranked = sorted(indexes, key=key, reverse=True)[:limit]
        return [Hit(self.documents[i], float(scores[i]), focus_matched, type_matched(i)) for i in ranked]
