"""manage.py import_training_data: JSON, JSONL and MedQuAD XML in; duplicates out; bad files change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from training.data import normalise_question, read_pairs
from training.models import TrainingExample

DATA = Path(__file__).parent / "data"


def run_import(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_training_data", *args, stdout=out)
    return out.getvalue()


def test_it_imports_a_json_list_and_reports_what_it_did(db):
    output = run_import(str(DATA / "sample.json"))
    assert "read 5, added 3, duplicates 1, skipped 1" in output
    rows = TrainingExample.objects.order_by("pk")
    assert [r.question for r in rows] == [
        "How much water should I drink when I have a cold?",
        "Is it safe to exercise with a mild cough?",
        "What helps a sore throat?",
    ]
    assert all(r.origin == TrainingExample.Origin.IMPORT and r.enabled for r in rows)
    assert rows[2].answer.startswith("Warm drinks, lozenges")


def test_it_imports_jsonl_with_input_and_output_fields(db):
    output = run_import(str(DATA / "sample.jsonl"))
    assert "read 3, added 3, duplicates 0, skipped 0" in output
    jet_lag = TrainingExample.objects.get(question="What is jet lag?")
    assert jet_lag.answer.startswith("Jet lag is tiredness")


def test_it_imports_a_medquad_folder_recursively_and_skips_empty_answers(db):
    output = run_import(str(DATA / "xml_sample"))
    # 5 pairs in two files: one without an answer, one asked again in the second file.
    assert "read 5, added 3, duplicates 1, skipped 1" in output
    hay_fever = TrainingExample.objects.get(question="What is (are) Hay Fever?")
    assert hay_fever.answer == (
        "Hay fever is an allergy to pollen that inflames the lining of the nose.\n"
        "It causes sneezing, a runny or blocked nose and itchy, watery eyes during the pollen season."
    )
    assert TrainingExample.objects.filter(question="What is (are) Chilblains?").exists()
    assert not TrainingExample.objects.filter(answer__contains="a duplicate").exists()


def test_it_reads_a_single_medquad_file(db):
    result = read_pairs(DATA / "xml_sample" / "sample-one.xml")
    assert [q for q, _ in result.pairs] == ["What is (are) Hay Fever?", "What are the treatments for Hay Fever?"]
    assert result.skipped == 1


def test_it_skips_questions_that_are_already_examples_even_disabled_ones(db):
    TrainingExample.objects.create(question="what helps a SORE throat!", answer="Curated.", enabled=False)
    TrainingExample.objects.create(question="Why do my ears pop on a plane?", answer="Curated.")
    assert "added 2, duplicates 2" in run_import(str(DATA / "sample.json"))
    assert "added 2, duplicates 1" in run_import(str(DATA / "sample.jsonl"))
    assert TrainingExample.objects.filter(answer="Curated.").count() == 2
    # Importing the same file again adds nothing.
    assert "added 0, duplicates 3" in run_import(str(DATA / "sample.jsonl"))


def test_a_dry_run_counts_but_saves_nothing(db):
    output = run_import(str(DATA / "sample.json"), "--dry-run")
    assert "would add 3" in output and "nothing was saved" in output
    assert not TrainingExample.objects.exists()


def test_questions_are_compared_without_case_spacing_or_punctuation():
    assert normalise_question("  What is (are) Hay Fever ?") == normalise_question("what is are hay-fever")
    assert normalise_question("What is asthma?") != normalise_question("What is eczema?")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.json", '[\n  {"question": "a", "answer": "b"},\n  {"question": "c" "answer": "d"}\n]', "line 3"),
        ("broken.jsonl", '{"input": "a", "output": "b"}\n{"input": "c", "output": \n', "line 2"),
        ("object.json", '{"question": "a", "answer": "b"}', "expected a JSON list"),
        ("fields.json", '[{"question": "a", "answer": "b"}, {"prompt": "c", "reply": "d"}]', "item 2"),
        ("types.jsonl", '{"question": "a", "answer": ["b"]}', "'answer' must be text"),
        ("broken.xml", "<Document><QAPairs><QAPair></QAPairs></Document>", "invalid XML at line 1"),
        ("other.xml", "<html><body/></html>", "not a MedQuAD file"),
        ("notes.txt", "question: answer", "unsupported file type"),
    ],
)
def test_a_bad_file_is_a_clear_error_and_changes_nothing(db, tmp_path, name, content, message):
    TrainingExample.objects.create(question="Existing question?", answer="Existing answer.")
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        run_import(str(path))
    assert list(TrainingExample.objects.values_list("question", flat=True)) == ["Existing question?"]


def test_a_folder_with_one_bad_xml_file_imports_none_of_its_files(db, tmp_path):
    good = (DATA / "xml_sample" / "sample-two.xml").read_text()
    (tmp_path / "a.xml").write_text(good)
    (tmp_path / "b.xml").write_text(good.replace("</QAPairs>", ""))
    with pytest.raises(CommandError, match=r"b\.xml: invalid XML"):
        run_import(str(tmp_path))
    assert not TrainingExample.objects.exists()


def test_a_missing_path_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_import(str(tmp_path / "nowhere.json"))
