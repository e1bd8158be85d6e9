"""manage.py evaluate: the knowledge split on MedQuAD-format files, the labelled-question run, the metrics.

The MedQuAD-format files under tests/data/knowledge_split are written in our own words."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bench import evaluation, knowledge_split
from bench.evaluation import DatasetError, EvalOptions, focus_names, names_focus, read_jsonl
from bench.knowledge_split import (
    COVERED,
    TEMPLATES,
    UNCOVERED,
    SplitOptions,
    evaluate_split,
    heldout_questions,
    paraphrase,
    passage_documents,
    read_corpus,
    split_documents,
)
from bench.metrics import lcs_length, percentile, rouge_l_f1
from inference import pipeline
from inference.models import FallbackRule
from knowledge.importers import PassageRecord
from knowledge.search import Document
from knowledge.text import phrase

SPLIT_DATA = Path(__file__).resolve().parent / "data" / "knowledge_split"
KNOWLEDGE = ("alpha/alpha-1.xml", "alpha/alpha-2.xml")  # chilblains, hiccups
# A seed whose wordings triage leaves alone: with seed 0 "What medicines help with chilblains?"
# is routed as an emergency (a triage false alarm the MedQuAD run shows too).
SEED = 2


@pytest.fixture
def corpus():
    documents, problems = read_corpus(SPLIT_DATA)
    assert problems == []
    return {document.name: document for document in documents}


@pytest.fixture
def fixed_split(monkeypatch, corpus):
    """The two Alpha documents are the knowledge, the four Beta ones are held out."""
    knowledge = [corpus[name] for name in KNOWLEDGE]
    heldout = [document for name, document in corpus.items() if name not in KNOWLEDGE]
    monkeypatch.setattr(knowledge_split, "split_documents", lambda documents, share, seed: (knowledge, heldout))
    return knowledge, heldout


# --- the split -----------------------------------------------------------------------------------


def test_the_reader_keeps_each_file_whole_and_leaves_out_empty_answers(corpus):
    assert sorted(corpus) == [
        "alpha/alpha-1.xml",
        "alpha/alpha-2.xml",
        "beta/beta-11.xml",
        "beta/beta-12.xml",
        "beta/beta-13.xml",
        "beta/beta-14.xml",
    ]
    hiccups = corpus["alpha/alpha-2.xml"]
    assert hiccups.focus == "Hiccups" and hiccups.synonyms == ("Singultus",)
    assert [record.question_type for record in hiccups.records] == ["information", "treatment"]  # outlook is empty


def test_the_split_is_by_document_and_the_same_for_a_seed(corpus):
    documents = list(corpus.values())
    knowledge, heldout = split_documents(documents, 0.5, seed=3)
    assert len(heldout) == 3 and len(knowledge) == 3
    assert {d.name for d in knowledge}.isdisjoint(d.name for d in heldout)
    assert sorted(d.name for d in knowledge + heldout) == sorted(corpus)
    again = split_documents(list(reversed(documents)), 0.5, seed=3)  # the input order does not matter
    assert [d.name for d in again[1]] == [d.name for d in heldout]
    draws = {tuple(d.name for d in split_documents(documents, 0.5, seed)[1]) for seed in range(10)}
    assert len(draws) > 1  # the seed decides
    # Every pair of a held-out document is held out with it.
    questions = heldout_questions(heldout, passage_documents(knowledge), seed=3)
    assert {q.document for q in questions} == {d.name for d in heldout}
    assert len(questions) == sum(len(d.records) for d in heldout)


@pytest.mark.parametrize("share", [0, 1, 1.5])
def test_a_held_out_share_outside_zero_to_one_is_refused(corpus, share):
    with pytest.raises(ValueError, match="heldout-share"):
        split_documents(list(corpus.values()), share, seed=0)


def test_held_out_questions_are_covered_when_the_knowledge_has_their_focus_by_name_or_synonym(corpus):
    knowledge = passage_documents([corpus[name] for name in KNOWLEDGE])
    heldout = [document for name, document in corpus.items() if name not in KNOWLEDGE]
    groups = {q.focus: q.group for q in heldout_questions(heldout, knowledge, seed=0)}
    assert groups == {
        "chilblains": COVERED,  # the same focus, written in lower case by another source
        "Singultus": COVERED,  # a synonym of the knowledge's "Hiccups"
        "Frostnip": UNCOVERED,
        # Its synonym "Cold injury" is also one of chilblains' synonyms: a shared group name is
        # not a shared topic.
        "Trench foot": UNCOVERED,
    }


def test_paraphrases_never_repeat_the_original_question():
    rng = random.Random(0)
    for question_type, templates in TEMPLATES.items():
        for template in templates:
            original = template.format(focus="Gout")  # the worst case: the original is one of ours
            for _ in range(20):
                _used, question = paraphrase(question_type, "Gout", original, rng)
                assert phrase(question) != phrase(original)
                assert "gout" in question.lower() and question[0].isupper()
    # Unknown types get a general wording; the focus is written in lower case.
    _used, question = paraphrase("", "Paget's Disease of Bone", "What is (are) Paget's Disease of Bone ?", rng)
    assert "paget's disease of bone" in question


def test_the_paraphrases_of_the_held_out_questions_are_new_words(corpus):
    knowledge = passage_documents([corpus[name] for name in KNOWLEDGE])
    heldout = [document for name, document in corpus.items() if name not in KNOWLEDGE]
    originals = {r.external_id: r.title for d in heldout for r in d.records}
    questions = heldout_questions(heldout, knowledge, seed=0)
    assert all(phrase(q.question) != phrase(originals[q.id]) for q in questions)
    assert [q.question for q in questions] == [q.question for q in heldout_questions(heldout, knowledge, seed=0)]


# --- metrics ------------------------------------------------------------------------------------


def test_rouge_l_scores_known_strings():
    # LCS "the cat on the mat": 5 of 6 words each way, F1 = 5/6.
    assert rouge_l_f1("the cat sat on the mat", "the cat was on the mat") == pytest.approx(5 / 6)
    # LCS "police the gunman" = 3 of 4 words each way: precision = recall = F1 = 0.75.
    assert rouge_l_f1("police killed the gunman", "police kill the gunman") == pytest.approx(0.75)
    assert rouge_l_f1("The cat sat.", "the CAT sat") == pytest.approx(1.0)
    assert rouge_l_f1("completely different words", "nothing shared here") == 0.0
    assert rouge_l_f1("", "a reference") == 0.0
    # 2 words shared of a 2-word candidate and a 6-word reference: P = 1, R = 1/3, F1 = 0.5.
    assert rouge_l_f1("asthma wheezing", "asthma causes coughing and some wheezing") == pytest.approx(0.5)


def test_the_bit_parallel_lcs_agrees_with_the_textbook_table():
    def table_lcs(a: list[str], b: list[str]) -> int:
        previous = [0] * (len(b) + 1)
        for x in a:
            current = [0]
            for j, y in enumerate(b):
                current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
            previous = current
        return previous[-1]

    generator = random.Random(7)
    for _ in range(60):
        # Lengths past 64 cross machine-word boundaries; a small alphabet makes many matches.
        a = [generator.choice("abcde") for _ in range(generator.randint(0, 150))]
        b = [generator.choice("abcdef") for _ in range(generator.randint(0, 150))]
        assert lcs_length(a, b) == table_lcs(a, b) == lcs_length(b, a)


def test_percentiles_interpolate_between_ranks():
    assert percentile([40, 10, 30, 20], 50) == pytest.approx(25)
    assert percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def test_relevance_accepts_the_focus_or_a_synonym_as_whole_words_in_any_case():
    names = focus_names("Hypertension", ["High blood pressure"])
    assert names_focus("HIGH BLOOD PRESSURE rarely has symptoms.", names)
    assert not names_focus("It is not a hypertensions thing", names)  # whole words only
    assert "kidney stones" in focus_names("Kidney Stones in Adults")


# --- a tiny knowledge split run -------------------------------------------------------------------


def test_the_knowledge_split_scores_each_configuration_per_group(curated_data, fixed_split):
    report = evaluate_split(
        SplitOptions(SPLIT_DATA, configs=["rules", "extract"], seed=SEED, progress=False), log=lambda line: None
    )
    meta = report.meta
    assert (meta["documents"], meta["knowledge_documents"], meta["heldout_documents"]) == (6, 2, 4)
    assert meta["knowledge_passages"] == 5 and meta["curated_entries"] == FallbackRule.objects.count()
    assert meta["questions"] == {COVERED: 3, UNCOVERED: 2}
    rules, extract = report.outcomes
    # The curated entries know nothing of chilblains or hiccups.
    assert rules.summary[COVERED]["answered"]["rate"] == 0.0
    assert rules.summary[UNCOVERED]["honest_unavailable"]["rate"] == 1.0
    covered = extract.summary[COVERED]
    assert covered["answered"] == {"rate": 1.0, "hits": 3, "n": 3}
    assert covered["focus_match"]["rate"] == 1.0
    assert covered["unsupported_sentences"]["rate"] == 0.0 and covered["unsupported_sentences"]["n"] >= 3
    assert covered["answers_with_missing_names"] == 0
    assert 0 < covered["rouge_l"]["mean"] < 1 and covered["latency_ms"]["p95"] is not None
    assert extract.summary[UNCOVERED]["honest_unavailable"]["rate"] == 1.0
    rows = {row.id: row for row in report.rows if row.config == "extract"}
    assert rows["Beta/0000014/1"].top_focus == "Hiccups" and rows["Beta/0000014/1"].focus_match
    assert {bar["holds"] for bar in extract.bars} == {True}
    assert any(bar["holds"] is False for bar in rules.bars)
    # The evaluation leaves the curators' hit counts alone.
    assert not FallbackRule.objects.filter(hit_count__gt=0).exists()


def test_the_gate_keeps_invented_names_out_of_final_answers_and_the_ablation_shows_them(
    curated_data, fixed_split, scripted_model
):
    model = scripted_model(
        "Chilblains are itchy patches on the toes after the cold. Doctors treat them with 40 mg of zorbamycin daily."
    )
    report = evaluate_split(
        SplitOptions(SPLIT_DATA, configs=["model", "model-nogate"], limit=2, seed=SEED, progress=False),
        log=lambda line: None,
    )
    gated, ungated = report.outcomes
    assert gated.model_version == "base" and model.requests
    # At most two questions per group for the model configurations.
    assert gated.questions == ungated.questions == 4
    assert gated.summary[COVERED]["sources"] == {"extract": 2}
    assert gated.summary[COVERED]["fallbacks"] == {"faithfulness gate": 2}
    assert gated.summary[COVERED]["answers_with_missing_names"] == 0
    assert gated.summary[COVERED]["unsupported_sentences"]["rate"] == 0.0
    assert ungated.summary[COVERED]["sources"] == {"model": 2}
    assert ungated.summary[COVERED]["answers_with_missing_names"] == 2
    # The dose sentence fails twice; the chilblains sentence also fails where it answers the
    # singultus question (its passages are about hiccups).
    assert ungated.summary[COVERED]["unsupported_sentences"] == {"rate": 0.75, "hits": 3, "n": 4}
    missing = {word for row in report.rows if row.config == "model-nogate" for word in row.missing}
    assert {"40", "zorbamycin"} <= missing
    assert any(bar["metric"] == "answers_with_missing_names" and bar["holds"] is False for bar in ungated.bars)


def test_only_retrieval_measures_the_search_without_the_pipeline(curated_data, fixed_split, monkeypatch):
    monkeypatch.setattr(pipeline, "answer", lambda *args, **kwargs: pytest.fail("the pipeline was called"))
    report = evaluate_split(
        SplitOptions(SPLIT_DATA, configs=["extract"], only_retrieval=True, seed=SEED, progress=False),
        log=lambda line: None,
    )
    summary = report.outcomes[0].summary
    assert summary[COVERED]["answered"]["rate"] == summary[COVERED]["focus_match"]["rate"] == 1.0
    assert summary[UNCOVERED]["honest_unavailable"]["rate"] == 1.0
    assert summary[COVERED]["search_ms"]["p50"] is not None
    assert report.meta["mode"] == "only retrieval"


def test_the_command_writes_json_and_markdown_without_the_reference_answers(curated_data, tmp_path):
    out = io.StringIO()
    call_command(
        "evaluate",
        knowledge_split=str(SPLIT_DATA),
        heldout_share=0.5,
        config=["rules", "extract"],
        output=tmp_path,
        stdout=out,
        stderr=io.StringIO(),
        verbosity=0,
    )
    data = json.loads((tmp_path / "knowledge-split-rules-extract.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "knowledge-split-rules-extract.md").read_text(encoding="utf-8")
    assert set(data["summary"]) == {"rules", "extract"} and data["meta"]["heldout_documents"] == 3
    assert "### Covered topics" in markdown and "### Acceptance bars" in markdown and "CC BY 4.0" in markdown
    assert "answered" in out.getvalue() and "Wrote" in out.getvalue()
    # Held-out reference answers are scored, never written out.
    for document in read_corpus(SPLIT_DATA)[0]:
        for record in document.records:
            if record.external_id in {row["id"] for row in data["rows"]}:
                assert record.text not in json.dumps(data)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_command_reports_each_bar_over_many_seeds(curated_data, tmp_path):
    out = io.StringIO()
    call_command(
        "evaluate",
        knowledge_split=str(SPLIT_DATA),
        heldout_share=0.5,
        config=["extract"],
        seeds="1-3",
        only_retrieval=True,
        output=tmp_path,
        stdout=out,
        stderr=io.StringIO(),
        verbosity=0,
    )
    summary = json.loads((tmp_path / "knowledge-split-seeds.json").read_text(encoding="utf-8"))
    assert summary["seeds"] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("seed-*")) == ["seed-1", "seed-2", "seed-3"]
    answered = next(row for row in summary["bars"] if row["group"] == "covered" and row["metric"] == "answered")
    assert answered["values"] and set(answered["values"]) <= {"1", "2", "3"} and answered["bar"] == ">= 0.9"
    assert answered["min"] <= answered["mean"] <= answered["max"]
    # Pooled over every question of every seed, not the mean of the rates.
    runs = [
        json.loads((tmp_path / f"seed-{s}" / "knowledge-split-extract-retrieval.json").read_text()) for s in (1, 2, 3)
    ]
    counts = [run["summary"]["extract"]["summary"]["covered"]["answered"] for run in runs]
    assert answered["pooled"] == pytest.approx(sum(c["hits"] for c in counts) / sum(c["n"] for c in counts), abs=1e-4)
    assert answered["seeds_failing"] == [int(seed) for seed, value in answered["values"].items() if value < 0.9]
    assert "answered" in out.getvalue() and "failing seeds" in out.getvalue()


@pytest.mark.parametrize(("text", "seeds"), [("1-3", [1, 2, 3]), ("5", [5]), ("1,3-4,3", [1, 3, 4])])
def test_seeds_are_read_as_numbers_and_ranges(text, seeds):
    from bench.split_seeds import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a-b", "3-1", "1-", "one"])
def test_a_seed_list_that_is_not_numbers_and_ranges_is_refused(text):
    from bench.split_seeds import parse_seeds

    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds(text)


# --- our labelled questions -----------------------------------------------------------------------


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(item) for item in items) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def labelled_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "labelled.jsonl",
        [
            {"question": "my dad collapsed and is not breathing", "emergency": True},
            {"question": "I think I'm having a heart attack, my chest is crushing", "emergency": True},
            {
                "question": "What are the symptoms of asthma?",
                "answer": "Wheezing, coughing, a tight chest and breathlessness.",
                "focus": "asthma",
                "emergency": False,
            },
            {"question": "how do i lower my blood pressure", "focus": "hypertension", "synonyms": ["blood pressure"]},
        ],
    )


@pytest.mark.parametrize(
    "line,problem",
    [
        ('{"question": "ok?"', "invalid JSON"),
        ('{"answer": "no question"}', "'question' must be non-empty text"),
        ('{"question": "ok?", "emergency": "yes"}', "'emergency' must be true or false"),
        ('["a", "list"]', "expected an object"),
    ],
)
def test_the_jsonl_reader_names_the_line_of_a_malformed_record(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "fine?"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=rf"line 3: {problem}"):
        read_jsonl(path)


def test_the_labelled_run_scores_triage_and_curated_answers(curated_data, labelled_jsonl):
    report = evaluation.evaluate(EvalOptions(dataset=labelled_jsonl, configs=["rules"], progress=False))
    assert [row.source for row in report.rows] == ["emergency", "emergency", "rule", "rule"]
    summary = report.outcomes[0].summary
    assert summary["emergency_recall"]["rate"] == 1.0
    assert summary["emergency_false_alarms"] == {"rate": 0.0, "hits": 0, "n": 1}
    assert summary["relevance"]["rate"] == 1.0 and summary["rouge_l"]["n"] == 1
    markdown = evaluation.render_markdown(report)
    assert "| emergency recall | 100.0 % (2/2) |" in markdown
    assert not FallbackRule.objects.filter(hit_count__gt=0).exists()


def test_the_command_runs_the_labelled_set(curated_data, labelled_jsonl, tmp_path):
    call_command("evaluate", dataset=str(labelled_jsonl), output=tmp_path, stdout=io.StringIO(), verbosity=0)
    report = json.loads((tmp_path / "eval-labelled.json").read_text(encoding="utf-8"))
    assert report["meta"]["questions"] == 4 and set(report["summary"]) == {"rules"}


@pytest.mark.parametrize(
    "arguments,problem",
    [
        ({"dataset": "no/such/dataset.jsonl"}, "no such file"),
        ({"dataset": "manage.py"}, "unsupported dataset"),
        ({"knowledge_split": "no/such/folder"}, "no such file or folder"),
        ({"knowledge_split": str(SPLIT_DATA), "limit": 0}, "--limit must be at least 1"),
        ({"knowledge_split": str(SPLIT_DATA), "heldout_share": 2.0}, "--heldout-share"),
        ({"knowledge_split": str(SPLIT_DATA), "max_new_tokens": 0}, "--max-new-tokens"),
    ],
)
def test_bad_arguments_are_a_clear_command_error(db, tmp_path, arguments, problem):
    with pytest.raises(CommandError, match=problem):
        call_command("evaluate", output=tmp_path, stdout=io.StringIO(), stderr=io.StringIO(), verbosity=0, **arguments)
    assert not list(tmp_path.iterdir())


def test_our_labelled_set_is_well_formed_and_balanced():
    questions = read_jsonl(Path(__file__).resolve().parent.parent / "bench" / "data" / "labelled_questions.jsonl")
    labels = [question.emergency for question in questions]
    assert labels.count(True) >= 20 and labels.count(False) >= 40 and None not in labels
    assert len({question.id for question in questions}) == len(questions)
    assert all(question.focus for question in questions)


def test_two_names_are_the_same_topic_in_any_word_order_and_as_the_search_splits_titles():
    from knowledge.search import Document

    assert knowledge_split.names_of("Polyglucosan body disease, adult").matches(
        knowledge_split.names_of("adult polyglucosan body disease")
    )
    assert knowledge_split.names_of("spastic paraplegia type 15").matches(
        knowledge_split.names_of("Spastic paraplegia 15")
    )
    # A letter is part of the name: hepatitis C is not hepatitis.
    assert not knowledge_split.names_of("Hepatitis C").matches(knowledge_split.names_of("Hepatitis"))
    passage = Document(key="passage:1", title="t", focus="Parasites - Lymphatic Filariasis", text="x")
    assert knowledge_split.document_names(passage).matches(knowledge_split.names_of("Lymphatic filariasis"))
    assert not knowledge_split.document_names(passage).matches(knowledge_split.names_of("Parasites - Cysticercosis"))
    # "in adults" names the people a general passage speaks to anyway (the search reads it so too).
    assert knowledge_split.names_of("Kidney Stones in Adults").matches(knowledge_split.names_of("Kidney stones"))
    assert not knowledge_split.names_of("Kidney Stones in Children").matches(knowledge_split.names_of("Kidney stones"))


def test_a_focus_joining_names_is_covered_by_a_document_with_all_of_them_not_by_one_of_each():
    entry = Document(
        key="rule:1",
        title="Type 2 diabetes",
        focus="Type 2 diabetes",
        text="x",
        synonyms=("insulin resistance", "prediabetes"),
    )
    joined = knowledge_split.CorpusDocument("x/1.xml", "Insulin Resistance and Prediabetes", (), (_record("IR"),))
    assert knowledge_split.document_names(entry).matches(joined.names())
    assert {q.group for q in heldout_questions([joined], [entry], seed=0)} == {COVERED}
    # Three names, each another document's: a syndrome of its own (NARP), not any of them.
    narp = knowledge_split.CorpusDocument(
        "x/2.xml", "neuropathy, ataxia, and retinitis pigmentosa", (), (_record("NARP"),)
    )
    parts = [Document(key=f"passage:{n}", title=f, focus=f, text="x") for n, f in enumerate(("Ataxia", "Neuropathy"))]
    parts.append(Document(key="passage:9", title="RP", focus="Retinitis pigmentosa", text="x"))
    assert {q.group for q in heldout_questions([narp], parts, seed=0)} == {UNCOVERED}
    assert not any(knowledge_split.document_names(part).matches(narp.names()) for part in parts)


def test_a_held_out_page_for_men_or_women_is_covered_by_the_general_topic_but_not_the_other_way():
    # The search answers "urinary incontinence in men" from the general passage (GENERAL_GROUPS), so its
    # questions are covered; a knowledge page "... in Women" does not answer the general question.
    general = knowledge_split.names_of("Urinary Incontinence")
    for_men = knowledge_split.CorpusDocument("x/1.xml", "Urinary Incontinence in Men", (), ())
    assert for_men.names().matches(general)
    assert not knowledge_split.names_of("Urinary Incontinence in Women").matches(general)
    for_children = knowledge_split.CorpusDocument("x/2.xml", "Urinary Incontinence in Children", (), ())
    assert not for_children.names().matches(general)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Klver-Bucy Syndrome", "Kluver Bucy syndrome"),  # MedQuAD dropped the "ü"
        ("Henoch-Schnlein Purpura", "Henoch-Schonlein purpura"),
        ("Behet disease", "Behcet's disease"),  # ...and the "ç"
        ("Lken-Senior syndrome", "Loken-Senior syndrome"),
    ],
)
def test_a_name_with_its_accented_letters_dropped_is_the_same_topic(one, other):
    assert knowledge_split.names_of(one).matches(knowledge_split.names_of(other))
    # ...and a held-out document under one name is covered by a knowledge document under the other.
    heldout = knowledge_split.CorpusDocument("x/1.xml", one, (), (_record(one),))
    knowledge = [Document(key="passage:1", title=other, focus=other, text="x")]
    assert {q.group for q in heldout_questions([heldout], knowledge, seed=0)} == {COVERED}


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Fraser syndrome", "Frasier syndrome"),  # two syndromes: "i" is not a letter MedQuAD drops
        ("Tietz syndrome", "Tietze syndrome"),  # nor is a last letter
        ("CACH syndrome", "COACH syndrome"),  # initials of two diseases
        ("MADD", "MCADD"),
    ],
)
def test_names_a_letter_apart_that_are_not_a_dropped_accent_stay_apart(one, other):
    assert not knowledge_split.names_of(one).matches(knowledge_split.names_of(other))


def _record(focus: str) -> PassageRecord:
    return PassageRecord("x/1/1", f"What is {focus}?", focus, (), "information", "An answer.", "")


def test_a_curated_entry_covers_and_matches_the_topics_its_triggers_name_unless_titles_only(curated_data):
    from knowledge.search import Document

    entry = Document(key="rule:1", title="Fainting", focus="Fainting", text="x", synonyms=("syncope", "passing out"))
    syncope = knowledge_split.names_of("Syncope")
    assert knowledge_split.document_names(entry).matches(syncope)  # the default: triggers count
    assert not knowledge_split.document_names(entry, triggers_cover=False).matches(syncope)
    # A held-out question is covered, and the entry's answer matches its focus, by the same rule.
    heldout = knowledge_split.CorpusDocument("1_NHS/1.xml", "Syncope", (), ())
    question = knowledge_split.HeldOutQuestion(
        "NHS/1/1",
        heldout.name,
        "covered",
        "What is syncope?",
        "information",
        "Syncope",
        syncope,
        "",
        ("Fainting",),
        True,
    )
    from knowledge.search import Hit, KnowledgeIndex

    hits = [Hit(entry, 1.0, True, False)]
    row = knowledge_split.score_answer("extract", question, hits, 1.0, None, KnowledgeIndex([entry]), {})
    assert row.focus_match
