"""manage.py evaluate and bench.evaluation: reading datasets, the metrics, running configurations, the report."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bench import evaluation
from bench.evaluation import (
    DatasetError,
    EvalOptions,
    Row,
    focus_names,
    lcs_length,
    load_dataset,
    names_focus,
    percentile,
    read_jsonl,
    rouge_l_f1,
    summarise,
)
from inference import engine, pipeline
from inference.engine import GenerationRequest, GenerationStats
from inference.models import EmergencyRule, FallbackRule

ASTHMA_FILE = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="0000001" source="Test" url="https://example.org/asthma">
<Focus>Asthma</Focus>
<FocusAnnotations>
  <UMLS><CUIs><CUI>C0004096</CUI></CUIs></UMLS>
  <Synonyms><Synonym>Bronchial asthma</Synonym><Synonym>Reactive airway disease</Synonym></Synonyms>
</FocusAnnotations>
<QAPairs>
  <QAPair pid="1">
    <Question qid="0000001-1" qtype="symptoms">What are the symptoms of Asthma ?</Question>
    <Answer>Wheezing, coughing and a tight chest are the usual symptoms.
      They are often worse at night.</Answer>
  </QAPair>
  <QAPair pid="2">
    <Question qid="0000001-2" qtype="treatment">What are the treatments for Asthma ?</Question>
    <Answer></Answer>
  </QAPair>
</QAPairs>
</Document>
"""
# A few real MedQuAD files use lower-case tags and another root element.
BLOOD_PRESSURE_FILE = """<?xml version="1.0" encoding="UTF-8"?>
<doc docid="0000002" corpus="Test">
<doctitle-focus>High Blood Pressure</doctitle-focus>
<qaPairs>
  <pair pid="1">
    <question qid="0000002-1" qtype="prevention">How to prevent High Blood Pressure ??</question>
    <answer>Eat less salt, stay active and keep a healthy weight.</answer>
  </pair>
</qaPairs>
</doc>
"""
MIGRAINE_FILE = """<?xml version="1.0" encoding="UTF-8"?>
<DiseaseFile fid="0000003" source="Test">
<Focus>Migraine</Focus>
<QAPairs>
  <QAPair pid="1">
    <Question qid="0000003-1" qtype="information">What is (are) Migraine ?</Question>
    <Answer>A migraine is a moderate or severe headache, often with feeling sick.</Answer>
  </QAPair>
</QAPairs>
</DiseaseFile>
"""


@pytest.fixture
def medquad_folder(tmp_path: Path) -> Path:
    """A tiny MedQuAD-format folder: three subsets, one nested a level deeper."""
    root = tmp_path / "medquad"
    files = {
        "1_Test_QA/0000001.xml": ASTHMA_FILE,
        "2_Other_QA/0000002.xml": BLOOD_PRESSURE_FILE,
        "3_Deep_QA/nested/0000003.xml": MIGRAINE_FILE,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


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
                "question": "What are the warning signs of a stroke?",
                "focus": "stroke",
                "emergency": False,
            },
            {
                "question": "What are the symptoms of asthma?",
                "answer": "Wheezing, coughing, a tight chest and breathlessness.",
                "focus": "asthma",
                "emergency": False,
            },
            {"question": "how do i lower my blood pressure", "focus": "hypertension", "synonyms": ["blood pressure"]},
        ],
    )


def make_row(**fields) -> Row:
    defaults = dict(
        config="rules",
        id="q",
        question="q?",
        subset="",
        qtype="",
        focus="",
        label_emergency=None,
        source="rule",
        answered=True,
        disclaimer=True,
        relevant=None,
        rouge_l=None,
        latency_ms=10,
        tokens=0,
        generated_tokens=0,
        generation_seconds=0.0,
        first_token_ms=None,
        stopped_by="",
        fallback_reason="",
        matched_rule="",
        rule_score=None,
        adapter_version="",
        in_training=False,
        answer="an answer",
    )
    return Row(**{**defaults, **fields})


# --- metrics ------------------------------------------------------------------------------------


def test_rouge_l_scores_the_textbook_example_and_the_extremes():
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
        assert lcs_length(a, b) == table_lcs(a, b)
        assert lcs_length(b, a) == table_lcs(a, b)


def test_relevance_accepts_the_focus_or_a_synonym_as_whole_words_in_any_case():
    names = focus_names("Hypertension", ["High blood pressure"])
    assert names_focus("HIGH BLOOD PRESSURE rarely has symptoms.", names)
    assert names_focus("Hypertension is common.", names)
    assert not names_focus("Blood tests help.", names)
    assert not names_focus("It is not a hypertensions thing", names)  # whole words only
    assert names_focus("Pagets disease of bone", focus_names("Paget's Disease of Bone"))


def test_compound_medquad_foci_are_split_into_the_names_an_answer_would_use():
    names = focus_names("Acanthamoeba - Granulomatous Amebic Encephalitis (GAE); Keratitis")
    assert {"acanthamoeba", "granulomatous amebic encephalitis", "gae", "keratitis"} <= set(names)
    assert names_focus("Keratitis is an infection of the eye.", names)
    assert focus_names("Flu (A)") == ["flu a", "flu"]  # one-letter fragments would match anything
    assert "kidney stones" in focus_names("Kidney Stones in Adults")
    assert "acute myeloid leukemia" in focus_names("Adult Acute Myeloid Leukemia")
    assert {"pyelonephritis", "kidney infection"} <= set(focus_names("Pyelonephritis: Kidney Infection"))
    assert not names_focus("Leukemia is a blood cancer.", focus_names("Adult Acute Myeloid Leukemia"))


def test_percentiles_interpolate_between_ranks():
    assert percentile([40, 10, 30, 20], 50) == pytest.approx(25)
    assert percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def test_emergency_recall_and_false_alarms_are_counted_against_the_labels():
    rows = [
        make_row(id="e1", label_emergency=True, source="emergency"),
        make_row(id="e2", label_emergency=True, source="emergency"),
        make_row(id="e3", label_emergency=True, source="rule"),  # missed
        make_row(id="n1", label_emergency=False, source="emergency"),  # false alarm
        make_row(id="n2", label_emergency=False, source="rule"),
        make_row(id="n3", label_emergency=False, source="model"),
        make_row(id="n4", label_emergency=False, source="unavailable", answered=False),
        make_row(id="u1", label_emergency=None, source="emergency"),  # unlabelled: counts for neither
    ]
    summary = summarise(rows)
    assert summary["emergency_recall"] == {"rate": pytest.approx(2 / 3, abs=1e-4), "hits": 2, "n": 3}
    assert summary["emergency_false_alarms"] == {"rate": 0.25, "hits": 1, "n": 4}
    assert summary["missed_emergencies"] == ["e3"]
    assert summary["false_alarms"] == ["n1"]
    assert summary["answered"]["hits"] == 7
    assert summary["sources"]["emergency"]["hits"] == 4


def test_the_summary_averages_scores_only_where_they_apply_and_times_generation():
    rows = [
        make_row(relevant=True, rouge_l=0.5, generated_tokens=30, generation_seconds=1.0, first_token_ms=100),
        make_row(relevant=False, rouge_l=0.1, generated_tokens=10, generation_seconds=1.0, first_token_ms=300),
        make_row(relevant=None, rouge_l=None, latency_ms=1000),
    ]
    summary = summarise(rows)
    assert summary["relevance"] == {"rate": 0.5, "hits": 1, "n": 2}
    assert summary["rouge_l"] == {"mean": pytest.approx(0.3), "n": 2}
    assert summary["tokens_per_second"] == pytest.approx(20.0)  # 40 tokens in 2 s
    assert summary["first_token_ms_p50"] == pytest.approx(200)
    assert summary["latency_ms"]["p50"] == 10


# --- datasets -----------------------------------------------------------------------------------


def test_the_jsonl_reader_keeps_labels_focus_and_reference(labelled_jsonl):
    questions = read_jsonl(labelled_jsonl)
    assert len(questions) == 5
    assert questions[0].emergency is True and questions[0].id == "labelled.jsonl:1"
    assert questions[3].reference.startswith("Wheezing") and questions[3].focus == "asthma"
    assert questions[4].emergency is None and questions[4].synonyms == ("blood pressure",)


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


def test_the_medquad_reader_reads_every_subfolder_keeps_synonyms_and_skips_empty_answers(medquad_folder):
    dataset = load_dataset(medquad_folder)
    assert dataset.kind == "medquad" and dataset.name == "medquad"
    assert dataset.skipped == 1  # the treatment question has no answer
    by_id = {question.id: question for question in dataset.questions}
    assert set(by_id) == {"1_Test_QA/0000001.xml#1", "2_Other_QA/0000002.xml#1", "3_Deep_QA/nested/0000003.xml#1"}
    asthma = by_id["1_Test_QA/0000001.xml#1"]
    assert asthma.focus == "Asthma"
    assert asthma.synonyms == ("Bronchial asthma", "Reactive airway disease")
    assert asthma.question == "What are the symptoms of Asthma?"
    assert asthma.reference == (
        "Wheezing, coughing and a tight chest are the usual symptoms. They are often worse at night."
    )
    assert asthma.qtype == "symptoms" and asthma.subset == "1_Test_QA"
    blood_pressure = by_id["2_Other_QA/0000002.xml#1"]
    assert blood_pressure.focus == "High Blood Pressure"
    assert blood_pressure.question == "How to prevent High Blood Pressure?"
    assert by_id["3_Deep_QA/nested/0000003.xml#1"].subset == "3_Deep_QA"


def test_a_sample_is_reproducible_for_a_seed_and_drawn_from_every_subfolder(tmp_path):
    root = tmp_path / "big"
    for folder in ("1_A_QA", "2_B_QA", "3_C_QA"):
        (root / folder).mkdir(parents=True)
        for number in range(20):
            (root / folder / f"{number:07d}.xml").write_text(
                MIGRAINE_FILE.replace("Migraine", f"Condition {folder} {number}"), encoding="utf-8"
            )
    first = load_dataset(root, limit=15, seed=1)
    again = load_dataset(root, limit=15, seed=1)
    other = load_dataset(root, limit=15, seed=2)
    ids = [question.id for question in first.questions]
    assert ids == [question.id for question in again.questions]
    assert ids != [question.id for question in other.questions]
    assert len(ids) == 15 and first.available == 60
    assert ids == sorted(ids)  # dataset order, for readable reports
    assert len({question.subset for question in first.questions}) == 3


@pytest.mark.parametrize(
    "name,problem",
    [("missing.jsonl", "no such file or folder"), ("notes.txt", "unsupported dataset"), ("empty", "no MedQuAD")],
)
def test_unreadable_datasets_raise_a_clear_error(tmp_path, name, problem):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=problem):
        load_dataset(tmp_path / name)


def test_broken_xml_is_reported_with_its_file_and_position(tmp_path):
    (tmp_path / "broken.xml").write_text("<Document><Focus>Gout</Document>", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"broken\.xml: invalid XML at line 1"):
        load_dataset(tmp_path)


# --- running configurations ---------------------------------------------------------------------


def test_the_rules_configuration_runs_the_whole_pipeline_and_scores_it(curated_data, labelled_jsonl):
    hits_before = list(FallbackRule.objects.values_list("hit_count", flat=True)) + list(
        EmergencyRule.objects.values_list("hit_count", flat=True)
    )
    report = evaluation.evaluate(EvalOptions(dataset=labelled_jsonl, configs=["rules"]), log=lambda line: None)
    rows = {row.question: row for row in report.rows}
    assert [row.source for row in report.rows] == ["emergency", "emergency", "rule", "rule", "rule"]
    assert rows["What are the symptoms of asthma?"].matched_rule.lower().count("asthma")
    assert rows["What are the symptoms of asthma?"].rouge_l > 0
    assert rows["how do i lower my blood pressure"].relevant is True  # through the synonym
    summary = report.outcomes[0].summary
    assert summary["emergency_recall"]["rate"] == 1.0
    assert summary["emergency_false_alarms"] == {"rate": 0.0, "hits": 0, "n": 2}
    assert summary["disclaimer"]["rate"] == 1.0
    assert summary["tokens_per_second"] is None and summary["generations"] == 0
    markdown = evaluation.render_markdown(report)
    assert "| source: emergency | 40.0 % (2/5) |" in markdown and "| emergency recall | 100.0 % (2/2) |" in markdown
    # The evaluation leaves the curators' hit counts and the answer cache alone.
    hits_after = list(FallbackRule.objects.values_list("hit_count", flat=True)) + list(
        EmergencyRule.objects.values_list("hit_count", flat=True)
    )
    assert hits_after == hits_before
    assert not pipeline.answer("What are the symptoms of asthma?").cached


def test_the_markdown_sets_configurations_side_by_side_even_where_a_source_is_missing(curated_data, labelled_jsonl):
    report = evaluation.evaluate(EvalOptions(dataset=labelled_jsonl, configs=["rules"]), log=lambda line: None)
    model_rows = [make_row(config="base", source="model") for _ in range(5)]
    report.outcomes.append(evaluation.ConfigOutcome("base", "a model", summary=summarise(model_rows)))
    markdown = evaluation.render_markdown(report)
    assert "| metric | rules | base |" in markdown
    assert "| source: model | 0.0 % (0/5) | 100.0 % (5/5) |" in markdown
    assert "| source: rule | 60.0 % (3/5) | 0.0 % (0/5) |" in markdown


def test_a_run_without_a_terminal_reports_progress_in_lines(curated_data, labelled_jsonl):
    lines: list[str] = []
    evaluation.evaluate(EvalOptions(dataset=labelled_jsonl, configs=["rules"], progress=True), log=lines.append)
    assert [line.split(" questions")[0] for line in lines] == ["rules: 1/5", "rules: 2/5", "rules: 3/5", "rules: 4/5"]


def test_the_command_writes_json_and_markdown_for_a_medquad_folder(curated_data, medquad_folder, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "evaluate", dataset=str(medquad_folder), output=tmp_path / "results", stdout=out, stderr=err, verbosity=0
    )
    report = json.loads((tmp_path / "results" / "eval-medquad.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "results" / "eval-medquad.md").read_text(encoding="utf-8")
    assert report["meta"]["questions"] == 3 and report["meta"]["skipped_without_answer"] == 1
    assert len(report["rows"]) == 3
    assert report["summary"]["rules"]["summary"]["questions"] == 3
    assert report["summary"]["rules"]["summary"]["rouge_l"]["n"] == 3
    assert "| metric | rules |" in markdown and "ROUGE-L" in markdown and "CC BY 4.0" in markdown
    assert markdown in out.getvalue()
    # Reference answers are read at run time, never written out.
    assert "tight chest are the usual symptoms" not in json.dumps(report)
    assert not list((tmp_path / "results").glob("*.tmp"))
    assert evaluation.render_markdown(evaluation.read_report(tmp_path / "results" / "eval-medquad.json")) == markdown


def test_the_adapter_configuration_is_skipped_with_a_reason_when_none_is_active(curated_data, labelled_jsonl, tmp_path):
    err = io.StringIO()
    call_command(
        "evaluate",
        dataset=str(labelled_jsonl),
        config=["rules", "adapter"],
        output=tmp_path,
        stdout=io.StringIO(),
        stderr=err,
        verbosity=0,
    )
    assert "skipped adapter: no active adapter" in err.getvalue()
    report = json.loads((tmp_path / "eval-labelled.json").read_text(encoding="utf-8"))
    assert report["summary"]["adapter"]["skipped"].startswith("no active adapter")
    assert {row["config"] for row in report["rows"]} == {"rules"}
    assert "Skipped `adapter`: no active adapter" in (tmp_path / "eval-labelled.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "arguments,problem",
    [
        ({"dataset": "no/such/dataset.jsonl"}, "no such file or folder"),
        ({"dataset": "manage.py"}, "unsupported dataset"),
        ({"dataset": "bench/data/labelled_questions.jsonl", "limit": 0}, "--limit must be at least 1"),
        ({"dataset": "bench/data/labelled_questions.jsonl", "max_new_tokens": 0}, "--max-new-tokens"),
    ],
)
def test_bad_arguments_are_a_clear_command_error(db, tmp_path, arguments, problem):
    with pytest.raises(CommandError, match=problem):
        call_command("evaluate", output=tmp_path, stdout=io.StringIO(), verbosity=0, **arguments)
    assert not list(tmp_path.iterdir())


def test_our_labelled_set_is_well_formed_and_balanced():
    questions = read_jsonl(Path(__file__).resolve().parent.parent / "bench" / "data" / "labelled_questions.jsonl")
    labels = [question.emergency for question in questions]
    assert labels.count(True) >= 20 and labels.count(False) >= 40 and None not in labels
    assert len({question.id for question in questions}) == len(questions)
    assert all(question.focus for question in questions)


class RecordingGenerator:
    """A stand-in model that remembers what it was asked and gives a passable answer."""

    version = "recording"

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def stream(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        self.requests.append(request)
        stats.tokens, stats.stopped_by = 14, "eos"
        yield "Asthma is a long-term condition of the airways that can cause wheezing and coughing."


@pytest.mark.parametrize("grounding", [True, False])
def test_the_grounding_setting_decides_whether_the_matched_rule_reaches_the_prompt(
    curated_data, settings, monkeypatch, grounding
):
    settings.MEDBOT_GROUNDING = grounding
    settings.MEDBOT_ANSWER_CACHE_SECONDS = 0
    recorder = RecordingGenerator()
    monkeypatch.setattr(engine.get_manager(), "get", lambda: recorder)
    result = pipeline.answer("What are the symptoms of asthma?")
    assert result.source == "model" and "asthma" in result.matched_rule.lower()
    rule_text = FallbackRule.objects.get(title=result.matched_rule).answer
    assert recorder.requests[0].grounding == (rule_text if grounding else None)


@pytest.mark.slow
def test_the_model_configurations_run_the_tiny_model_and_time_its_generations(
    curated_data, tiny_gpt2, settings, labelled_jsonl, tmp_path
):
    from tests.test_engine import make_adapter

    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)
    settings.MEDBOT_DTYPE = "float32"
    settings.MEDBOT_ADAPTER = str(make_adapter(tiny_gpt2, tmp_path / "adapter"))
    report = evaluation.evaluate(
        EvalOptions(dataset=labelled_jsonl, configs=["base", "adapter-nogrounding"], max_new_tokens=6, progress=False),
        log=lambda line: None,
    )
    assert [outcome.skipped for outcome in report.outcomes] == ["", ""]
    assert report.meta["max_new_tokens"] == 6
    # base hides the configured adapter; the adapter configuration serves it.
    assert [outcome.adapter_version for outcome in report.outcomes] == ["base", "path:adapter"]
    for outcome in report.outcomes:
        rows = [row for row in report.rows if row.config == outcome.config]
        assert outcome.load_seconds is not None
        asked = [row for row in rows if row.source != "emergency"]
        assert len(asked) == 3 and all(0 < row.generated_tokens <= 6 for row in asked)
        assert all(row.generation_seconds > 0 and row.adapter_version == outcome.adapter_version for row in asked)
        assert outcome.summary["generations"] == 3 and outcome.summary["tokens_per_second"] > 0
    # The evaluation hands the process back with its own settings: model off, engine reset.
    assert engine.get_manager().state == "disabled"
    assert engine.get_manager().get() is None
