"""The learned second opinion: a small scikit-learn model that says how likely a message is an emergency.

Character n-grams (2 to 5 letters, so typos and run-together words still share features) and word
unigrams and bigrams, TF-IDF weighted, into a logistic regression. It is trained on the corpus generated
from the *shipped* concepts and rules plus the hand-written phrasings (``corpus``), never on the held-out
evaluation set.

Loading: lazily, once per process, on the first message. The fitted model is cached on disk under
``MEDBOT_MODEL_CACHE/triage/`` keyed by a hash of everything it is trained from (the fixtures, the
generator version, the scikit-learn version), and beside it its arithmetic as plain JSON
(``LinearScorer``): a serving worker reads only that, never importing scikit-learn (0.8 s and
~75 MiB per worker). Only the first process after a data or code change trains it (a few seconds).
``manage.py triage_classifier`` trains it ahead of time and reports how it scores.

A curator's edit in the admin reaches the rules at once; the classifier keeps the shipped data until
the fixtures change. That is deliberate: retraining inside a request would cost seconds, and the rules
side is what makes a new synonym fire.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from inference.text import QUESTION_STARTS, pleasantry
from inference.triage import corpus
from inference.triage.matcher import PERSONAL, SOMEONE_ELSE_CONCEPTS, Reading
from inference.triage.text import normalise

logger = logging.getLogger("inference.triage")

THRESHOLD = 0.6  # probability of emergency at or above which the classifier says emergency...
# ...when the rules' reading found a symptom or sign reported as happening now; without one (nothing
# named, or only negated, past or hypothetical mentions) the classifier must be this sure on its own.
# The classifier cannot read negation and tense; the matcher can.
SURE = 0.9
SURE_MIN_WORDS = 4  # ...and the fewest words a message needs for that, unless it is a cry for help:
DISTRESS = frozenset("help dying emergency ambulance sos".split())  # "help!!", "im dying"
# The concepts that say who a message is about, and the most words a message saying only that may have
# before the classifier alone may be sure of it.
WHO = SOMEONE_ELSE_CONCEPTS | {"pregnant"}
SURE_MAX_WHO_WORDS = 8
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TRAINED_FROM = ("triage_concepts.json", "emergency_rules.json", "triage_phrasings.jsonl")

_lock = threading.Lock()
_models: dict[str, Any] = {}  # cache key -> fitted pipeline, so tests and reloads train once per process


@functools.cache
def cache_key() -> str:
    """Hash of what the model is trained from; read once per process (a data change ships with a restart)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for name in TRAINED_FROM:
        digest.update((FIXTURES / name).read_bytes())
    # The version without importing scikit-learn: serving workers never need it.
    digest.update(f"generator {corpus.GENERATOR_VERSION} sklearn {version('scikit-learn')}".encode())
    return digest.hexdigest()[:16]


def training_data() -> tuple[list[str], list[int], list[corpus.Example]]:
    """Texts (normalised), labels (1 = emergency) and the examples they came from."""
    from inference.triage import CONCEPTS_FIXTURE, RULES_FIXTURE, rows_from_fixture

    examples = list(corpus.iter_corpus(rows_from_fixture(CONCEPTS_FIXTURE), rows_from_fixture(RULES_FIXTURE)))
    return [normalise(example.text) for example in examples], [int(e.level == "emergency") for e in examples], examples


def build() -> Any:
    """An unfitted pipeline. Imports scikit-learn here: nothing heavy at import time."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion(
        [
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
            ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True)),
        ]
    )
    return Pipeline(
        [("features", features), ("model", LogisticRegression(C=8.0, max_iter=2000, class_weight="balanced"))]
    )


def train() -> Any:
    texts, labels, _ = training_data()
    model = build()
    model.fit(texts, labels)
    return model


def _path(key: str) -> Path:
    return Path(settings.MEDBOT_MODEL_CACHE) / "triage" / f"classifier-{key}.joblib"


def _save(model: Any, path: Path) -> None:
    import joblib

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: another worker never reads half a file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        joblib.dump(model, temporary)
        os.replace(temporary, path)
        for stale in path.parent.glob("classifier-*.joblib"):  # models trained from older data
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        logger.warning("Triage classifier: could not cache the model at %s", path, exc_info=True)


def get() -> Any:
    """The fitted model for the current data: from memory, from the disk cache, or trained now."""
    key = cache_key()
    model = _models.get(key)
    if model is not None:
        return model
    with _lock:
        if key in _models:
            return _models[key]
        path = _path(key)
        started = time.monotonic()
        if path.exists():
            import joblib

            try:
                model = joblib.load(path)
                logger.info("Triage classifier loaded from %s in %.2f s", path, time.monotonic() - started)
            except Exception:
                logger.warning("Triage classifier: unreadable cache %s; training again", path, exc_info=True)
                model = None
        if model is None:
            model = train()
            logger.info("Triage classifier trained in %.1f s", time.monotonic() - started)
            _save(model, path)
        _models[key] = model
        return model


_WHITE_SPACES = re.compile(r"\s\s+")
_WORD_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's ``char_wb`` analyzer (lowercased): n-grams inside each space-padded word."""
    grams: list[str] = []
    for word in _WHITE_SPACES.sub(" ", text.lower()).split():
        word = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            grams.append(word[offset : offset + n])
            while offset + n < len(word):
                offset += 1
                grams.append(word[offset : offset + n])
            if offset == 0:  # a word shorter than n: counted once
                break
    return grams


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's ``word`` analyzer (lowercased, default token pattern): n-grams of tokens."""
    tokens = _WORD_TOKEN.findall(text.lower())
    return [" ".join(tokens[i : i + n]) for n in range(low, high + 1) for i in range(len(tokens) - n + 1)]


ANALYZERS = {"char_wb": char_wb_ngrams, "word": word_ngrams}


class LinearScorer:
    """The fitted pipeline's arithmetic in plain Python dictionaries, for one message at a time.

    scikit-learn's per-call overhead (input validation, sparse matrices) is several milliseconds for a
    single short text; a TF-IDF + logistic regression score is a few hundred dictionary lookups. Gives
    the same probability as ``predict_proba`` (checked in the tests). It is saved as JSON beside the
    fitted model and read back without scikit-learn."""

    def __init__(self, intercept: float, parts: list[dict[str, Any]]) -> None:
        self.intercept = intercept
        self.parts = [
            (part["analyzer"], tuple(part["ngram_range"]), part["weights"], bool(part["sublinear"])) for part in parts
        ]

    @classmethod
    def from_model(cls, model: Any) -> LinearScorer:
        union = model.named_steps["features"]
        coefficients = model.named_steps["model"].coef_[0]
        parts, offset = [], 0
        for _, vectorizer in union.transformer_list:
            if vectorizer.analyzer not in ANALYZERS or not vectorizer.lowercase or vectorizer.preprocessor:
                raise ValueError(f"no plain scorer for a {vectorizer.analyzer!r} vectorizer")
            vocabulary, idf = vectorizer.vocabulary_, vectorizer.idf_
            weights = {
                term: (float(idf[index]), float(coefficients[offset + index])) for term, index in vocabulary.items()
            }
            parts.append(
                {
                    "analyzer": vectorizer.analyzer,
                    "ngram_range": list(vectorizer.ngram_range),
                    "sublinear": bool(vectorizer.sublinear_tf),
                    "weights": weights,
                }
            )
            offset += len(vocabulary)
        return cls(float(model.named_steps["model"].intercept_[0]), parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "parts": [
                {"analyzer": analyzer, "ngram_range": list(ngrams), "weights": weights, "sublinear": sublinear}
                for analyzer, ngrams, weights, sublinear in self.parts
            ],
        }

    def probability(self, normalised: str) -> float:
        score = self.intercept
        for analyzer, (low, high), weights, sublinear in self.parts:
            counts: dict[str, int] = {}
            for term in ANALYZERS[analyzer](normalised, low, high):
                if term in weights:
                    counts[term] = counts.get(term, 0) + 1
            if not counts:
                continue
            norm, dot = 0.0, 0.0
            for term, count in counts.items():
                idf, coefficient = weights[term]
                value = (1.0 + math.log(count) if sublinear else count) * idf
                norm += value * value
                dot += value * coefficient
            score += dot / math.sqrt(norm)
        return 1.0 / (1.0 + math.exp(-score))


_scorers: dict[str, LinearScorer] = {}


def _scorer_path(key: str) -> Path:
    return Path(settings.MEDBOT_MODEL_CACHE) / "triage" / f"scorer-{key}.json"


def scorer() -> LinearScorer:
    """The scorer for the current data: from memory, from its JSON beside the model (no
    scikit-learn import), or made from the fitted model (and written for the next process)."""
    key = cache_key()
    found = _scorers.get(key)
    if found is not None:
        return found
    path = _scorer_path(key)
    try:
        found = LinearScorer(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        found = LinearScorer.from_model(get())
        _write_scorer(found, path)
    _scorers[key] = found
    return found


def _write_scorer(found: LinearScorer, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(found.as_dict(), out)
        os.replace(temporary, path)
        for stale in path.parent.glob("scorer-*.json"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        logger.warning("Triage classifier: could not cache the scorer at %s", path, exc_info=True)


def probability(text: str) -> float | None:
    """The probability that ``text`` is an emergency, or None (with a warning) if the model fails."""
    try:
        return scorer().probability(normalise(text))
    except Exception:
        logger.warning("Triage classifier unavailable; the rules decide alone", exc_info=True)
        return None


def raises(reading: Reading, probability: float | None) -> bool:
    """Whether the classifier's opinion makes this message an emergency (it never lowers a level).

    A question about a condition with nobody in it stays a question whatever the classifier thinks, and
    thanks or a greeting alone ("thanks so much that really helped", 0.91) is never an emergency. A
    message that asks something is still judged: people ask while they report ("could my mum be having
    a stroke? her words are coming out jumbled"), and so is one that names an animal."""
    if probability is None or reading.about or pleasantry(reading.prepared):
        return False
    words = reading.prepared.replace("|", " ").split()
    # Sure on its own only with something to be sure of: a greeting ("hi", "hi im ed") is too short
    # to judge, and no red flag is found in it. And not of a question about nobody, even without its
    # question mark: "what foods to avoid with gout" is a question however it scores.
    sure = (
        probability >= SURE
        and (len(words) >= SURE_MIN_WORDS or bool(DISTRESS & set(words)))
        and (PERSONAL in reading.context or not (words[:1] and words[0] in QUESTION_STARTS))
        # Who someone is and nothing else ("my baby is 7 weeks old", 0.98) is the start of a story.
        and not (reading.concepts and set(reading.concepts) <= WHO and len(words) <= SURE_MAX_WHO_WORDS)
    )
    # A complaint that alone is no emergency ("my friend has a headache", "i feel dizzy", "i think i
    # broke my toe"): the classifier must be sure. With it, a red flag the rules know fires anyway.
    everyday = reading.reported <= corpus.ALONE_NOT_EMERGENCY
    return sure or (probability >= THRESHOLD and reading.reports_symptom and not everyday)
