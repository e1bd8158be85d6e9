"""manage.py import_knowledge: MedQuAD's three roots, JSONL and leaflets in; bad files reported and
left out whole; re-imports update in place."""

from __future__ import annotations

import collections
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from knowledge import importers, versions
from knowledge.importers import ImportProblem, import_knowledge, iter_files, read_file
from knowledge.models import KnowledgeSource, Passage
from training.data import read_pairs

DATA = Path(__file__).parent / "data" / "knowledge"
MEDQUAD = Path(settings.BASE_DIR).parent / "shared" / "data" / "medquad"


def run_import(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_knowledge", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def passages(source: str = "test") -> dict[str, Passage]:
    return {p.external_id: p for p in Passage.objects.filter(source__name=source)}


# --- one test per format -----------------------------------------------------------------------


def test_it_imports_a_medquad_document_with_synonyms_types_and_tidy_questions(db):
    report = import_knowledge(DATA / "xml" / "document-root.xml", "test")

    assert (report.files, report.added, report.skipped, report.problems) == (1, 2, 1, [])
    rows = passages()
    assert set(rows) == {"SampleDocs/0000101/1", "SampleDocs/0000101/2"}
    what = rows["SampleDocs/0000101/1"]
    assert what.title == "What is (are) Hiccups?"
    assert what.focus == "Hiccups"
    assert what.synonym_list() == ["Singultus", "Hiccoughs"]  # the focus itself is not its own synonym
    assert what.question_type == "information"
    assert what.text == (
        "Hiccups are sudden, involuntary tightenings of the diaphragm.\n"
        "Each one closes the vocal cords briefly, which makes the familiar sound."
    )
    assert what.url == "https://example.org/sample/hiccups"
    assert rows["SampleDocs/0000101/2"].question_type == "treatment"


def test_it_imports_the_lowercase_doc_root_of_some_ninds_files(db):
    import_knowledge(DATA / "xml" / "doc-root.xml", "test")

    rows = passages()
    assert set(rows) == {"SampleNeuro/0000102/1", "SampleNeuro/0000102/2"}
    first = rows["SampleNeuro/0000102/1"]
    assert (first.title, first.focus, first.question_type) == (
        "What is restless legs syndrome?",
        "Restless Legs",
        "information",
    )
    assert first.url == "https://example.org/sample/restless-legs"
    assert rows["SampleNeuro/0000102/2"].question_type == ""  # a type we do not know is left blank


def test_it_imports_the_disease_file_root_of_a_cdc_file(db):
    import_knowledge(DATA / "xml" / "diseasefile-root.xml", "test")

    rows = passages()
    assert set(rows) == {"SampleCDC/0000103/1", "SampleCDC/0000103/2"}
    prevent = rows["SampleCDC/0000103/2"]
    assert (prevent.title, prevent.focus, prevent.question_type) == (
        "How to prevent Head Lice?",
        "Head Lice",
        "prevention",
    )


def test_it_imports_jsonl_with_or_without_ids_and_skips_empty_answers(db):
    report = import_knowledge(DATA / "passages.jsonl", "test")

    assert (report.added, report.skipped) == (3, 1)
    rows = passages()
    bites = rows["bites-1"]
    assert (bites.title, bites.focus, bites.question_type) == (
        "What should I do after an insect bite?",
        "Insect bites",
        "treatment",
    )
    assert bites.synonym_list() == ["Bug bites", "Stings"]
    assert bites.text.splitlines()[1] == "A pharmacist can suggest a cream for the itching."
    assert bites.url == "https://example.org/leaflets/bites"
    by_title = {p.title: p for p in rows.values()}
    cold_sore = by_title["How long does a cold sore last?"]
    assert cold_sore.external_id.startswith("sha1:") and cold_sore.focus == "Cold sores"
    assert by_title["Who is more likely to get sunburn?"].question_type == "susceptibility"


def test_it_imports_a_folder_of_markdown_leaflets_split_at_their_headings(db):
    report = import_knowledge(DATA / "leaflets", "clinic")

    assert report.files == 2  # README.md describes the folder and is left out
    rows = passages("clinic")
    assert set(rows) == {"sprains.md#1", "sprains.md#2", "sprains.md#3", "sprains.md#4", "travel/jet_lag.markdown#1"}
    intro, symptoms, treatment, help_ = (rows[f"sprains.md#{n}"] for n in range(1, 5))
    assert intro.title == "Sprains and strains: looking after yourself"
    assert {p.focus for p in (intro, symptoms, treatment, help_)} == {"Sprains and strains"}
    assert (symptoms.title, symptoms.question_type) == ("Symptoms", "symptoms")
    assert (
        symptoms.text
        == "- Pain and tenderness around a joint\n- Swelling or bruising\n- Trouble putting weight on the limb"
    )
    assert treatment.question_type == "treatment"
    # Shown as text: link targets and emphasis marks are dropped, their words kept.
    assert treatment.text.endswith("See our pharmacy page for supports.")
    assert (help_.title, help_.question_type) == ("When to get help", "")
    jet_lag = rows["travel/jet_lag.markdown#1"]
    assert (jet_lag.title, jet_lag.focus) == ("Jet lag", "Jet lag")  # no heading: from the file name
    assert jet_lag.text.count("\n") == 2  # three short paragraphs make one passage


def test_it_imports_a_plain_text_leaflet_in_paragraph_groups(db, monkeypatch):
    monkeypatch.setattr(importers, "PARAGRAPHS_PER_PASSAGE_CHARS", 150)
    import_knowledge(DATA / "earache.txt", "clinic")

    rows = passages("clinic")
    assert list(rows) == ["earache.txt#1", "earache.txt#2", "earache.txt#3"]
    assert {p.title for p in rows.values()} == {"Earache"}
    assert rows["earache.txt#1"].text == "Earache is common in children and often follows a cold."
    assert rows["earache.txt#3"].text.startswith("See a doctor if there is a high temperature")


def test_training_reads_every_medquad_root_with_the_same_reader():
    result = read_pairs(DATA / "xml")
    assert len(result.pairs) == 6 and result.skipped == 1
    assert ("What is restless legs syndrome?", read_file(DATA / "xml" / "doc-root.xml")[0].text) in (result.pairs)


# --- bad files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.xml", b"<Document><QAPairs><QAPair></QAPairs></Document>", "invalid XML at line 1"),
        ("page.xml", b"<html><body/></html>", "not a MedQuAD file (root element <html>"),
        ("latin1.xml", '<Document id="1"><Focus>Ecz\xe9ma</Focus></Document>'.encode("latin-1"), "not UTF-8"),
        ("lines.jsonl", b'{"title": "a", "text": "b"}\n{"title": "c", "text": \n', "line 2: invalid JSON"),
        ("fields.jsonl", b'{"title": "a", "text": "b"}\n{"prompt": "c"}\n', "line 2: needs 'text' or 'answer'"),
        ("types.jsonl", b'{"title": "a", "text": "b", "question_type": "gossip"}\n', "unknown question_type"),
        ("twice.jsonl", b'{"id": 1, "title": "a", "text": "b"}\n{"id": "1", "title": "c", "text": "d"}\n', "line 2"),
        ("latin1.md", "# Ecz\xe9ma\n\nDry skin.".encode("latin-1"), "not UTF-8"),
        ("empty.txt", b"\n\n", "no text to import"),
    ],
)
def test_a_bad_file_is_reported_with_its_reason_and_nothing_of_it_is_written(db, tmp_path, name, content, reason):
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "ok", "title": "A good line", "text": "Imported."}\n')
    bad = tmp_path / name
    bad.write_bytes(content)

    report = import_knowledge(tmp_path, "test")

    assert [path for path, _ in report.problems] == [bad]
    assert reason in report.problems[0][1]
    assert list(passages()) == ["ok"]  # the good file still imports; nothing of the bad one
    assert report.files == 1


def test_a_medquad_folder_with_one_bad_file_imports_the_others_whole(db, tmp_path):
    good = (DATA / "xml" / "document-root.xml").read_text()
    (tmp_path / "0000101.xml").write_text(good)
    # Valid XML until the last pair: a reader writing as it went would leave two passages behind.
    (tmp_path / "0000104.xml").write_text(good.replace("0000101", "0000104").replace("</QAPairs>", ""))

    report = import_knowledge(tmp_path, "test")

    assert report.problems == [(tmp_path / "0000104.xml", "invalid XML at line 31, column 2")]
    assert set(passages()) == {"SampleDocs/0000101/1", "SampleDocs/0000101/2"}


def test_an_import_whose_only_file_is_bad_creates_no_source(db, tmp_path):
    (tmp_path / "bad.jsonl").write_text("not json\n")
    report = import_knowledge(tmp_path / "bad.jsonl", "test")
    assert report.problems == [(tmp_path / "bad.jsonl", "line 1: invalid JSON at column 1: Expecting value")]
    assert not KnowledgeSource.objects.exists()


def test_two_files_claiming_the_same_id_import_only_the_first(db, tmp_path):
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text(json.dumps({"id": "same", "title": name, "text": "Text."}) + "\n")

    report = import_knowledge(tmp_path, "test")

    assert report.problems == [(tmp_path / "b.jsonl", f"the id 'same' was already read from {tmp_path / 'a.jsonl'}")]
    assert passages()["same"].title == "A.jsonl"


def test_a_missing_path_or_a_folder_without_knowledge_files_is_an_error(db, tmp_path):
    with pytest.raises(ImportProblem, match="no such file"):
        import_knowledge(tmp_path / "nowhere", "test")
    (tmp_path / "notes.docx").write_bytes(b"PK")
    with pytest.raises(ImportProblem, match="no files to import"):
        import_knowledge(tmp_path, "test")
    assert iter_files(tmp_path / "notes.docx") == [tmp_path / "notes.docx"]
    report = import_knowledge(tmp_path / "notes.docx", "test")
    assert [path for path, _ in report.problems] == [tmp_path / "notes.docx"]
    assert "unsupported file type '.docx'" in report.problems[0][1]
    assert not Passage.objects.exists()


# --- re-importing ------------------------------------------------------------------------------


def test_reimporting_updates_changed_passages_in_place_and_leaves_the_rest_alone(db, tmp_path):
    path = tmp_path / "faq.jsonl"
    lines = [{"id": str(n), "title": f"Question {n}?", "focus": "Colds", "text": f"Answer {n}."} for n in range(3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    import_knowledge(path, "test", publisher="Our clinic")
    before = passages()

    lines[1]["text"] = "A corrected answer."
    lines.append({"id": "3", "title": "Question 3?", "focus": "Colds", "text": "Answer 3."})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines[1:]))  # line 0 is gone
    report = import_knowledge(path, "test")

    assert (report.added, report.updated, report.unchanged, report.missing, report.deleted) == (1, 1, 1, 1, 0)
    after = passages()
    assert Passage.objects.count() == 4  # no duplicates; the passage that left the file is kept
    assert after["1"].pk == before["1"].pk and after["1"].text == "A corrected answer."
    assert after["1"].updated_at > before["1"].updated_at
    assert after["2"].updated_at == before["2"].updated_at
    assert KnowledgeSource.objects.get(name="test").publisher == "Our clinic"  # not given again: kept

    report = import_knowledge(path, "test", delete_missing=True)
    assert (report.added, report.updated, report.unchanged, report.deleted) == (0, 0, 3, 1)
    assert set(passages()) == {"1", "2", "3"}


def test_a_leaflet_imported_with_its_folder_then_alone_is_updated_not_added_again(db, tmp_path):
    # Its id starts with its path below the folder imported: "clinic/asthma.md#1", then "asthma.md#1".
    folder = tmp_path / "leaflets" / "clinic"
    folder.mkdir(parents=True)
    (folder / "asthma.md").write_text("# Asthma\n\nAsthma narrows the airways.\n")
    (folder / "colds.md").write_text("# Colds\n\nColds get better by themselves.\n")
    import_knowledge(tmp_path / "leaflets", "test")
    assert set(passages()) == {"clinic/asthma.md#1", "clinic/colds.md#1"}

    (folder / "asthma.md").write_text("# Asthma\n\nAsthma narrows the airways. An inhaler helps.\n")
    report = import_knowledge(folder / "asthma.md", "test")
    assert (report.added, report.updated) == (0, 1)
    assert set(passages()) == {"clinic/asthma.md#1", "clinic/colds.md#1"}
    assert "inhaler" in passages()["clinic/asthma.md#1"].text

    report = import_knowledge(tmp_path / "leaflets", "test")  # and the folder again: nothing new
    assert (report.added, report.updated, report.unchanged) == (0, 0, 2)


def test_an_import_reports_its_progress_file_by_file(db):
    calls: list[tuple[int, int]] = []
    import_knowledge(DATA / "xml", "test", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_an_import_bumps_the_knowledge_version_once_it_is_written(db):
    before = versions.current(versions.KNOWLEDGE)
    import_knowledge(DATA / "passages.jsonl", "test")
    assert versions.current(versions.KNOWLEDGE) != before


def test_without_a_shared_cache_an_import_by_another_process_still_reaches_the_index(db, monkeypatch):
    # Development keeps its cache in each process's memory: an import run in a second terminal bumps
    # the version in its own cache only. The server still sees it, from the tables themselves.
    from inference.retrieval import retriever

    monkeypatch.setattr(versions, "_process_local_cache", lambda: True)  # as without REDIS_URL
    assert retriever.search("What should I do after an insect bite?") == []
    monkeypatch.setattr(versions, "bump", lambda name: None)  # the other process's signal, never seen here
    import_knowledge(DATA / "passages.jsonl", "test")
    versions.forget_fingerprints()  # instead of waiting FINGERPRINT_SECONDS
    assert retriever.search("What should I do after an insect bite?")[0].document.focus == "Insect bites"


def test_an_import_whose_signal_was_lost_with_a_shared_cache_still_reaches_the_index(db, monkeypatch):
    # The attack review: with Redis paused, the import's signal waited in the command's memory and was
    # lost when it exited; servers never saw the change. The tables' fingerprint is read with a shared
    # cache too, every SHARED_FINGERPRINT_SECONDS.
    from inference.retrieval import retriever

    monkeypatch.setattr(versions, "_process_local_cache", lambda: False)  # as with REDIS_URL
    assert retriever.search("What should I do after an insect bite?") == []
    monkeypatch.setattr(versions, "bump", lambda name: None)  # the signal that never got through
    import_knowledge(DATA / "passages.jsonl", "test")
    versions.forget_fingerprints()  # instead of waiting SHARED_FINGERPRINT_SECONDS
    assert retriever.search("What should I do after an insect bite?")[0].document.focus == "Insect bites"


def test_a_failed_table_read_keeps_the_last_version_reading(db, monkeypatch, caplog):
    # A passing database error must not change the version (each change rebuilds every index).
    monkeypatch.setattr(versions, "_process_local_cache", lambda: True)
    before = versions.current(versions.KNOWLEDGE)
    assert ":" in before  # the token and the tables' fingerprint

    def unreadable(label):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(versions.apps, "get_model", unreadable)
    versions.forget_fingerprints()
    versions._fingerprints[versions.KNOWLEDGE] = (float("-inf"), before.partition(":")[2])
    assert versions.current(versions.KNOWLEDGE) == before
    assert "keeping the last reading" in caplog.text


# --- the command -------------------------------------------------------------------------------


def test_the_command_creates_the_source_and_prints_a_summary(db):
    out, _ = run_import(
        str(DATA / "xml"), "--source", "medquad", "--publisher", "NIH", "--licence", "CC BY 4.0",
        "--url", "https://example.org/medquad",
    )  # fmt: skip

    assert "medquad: 3 files read, 6 passages added, 0 updated, 0 unchanged, 1 skipped (empty)" in out
    source = KnowledgeSource.objects.get(name="medquad")
    assert (source.publisher, source.licence, source.url, source.enabled) == (
        "NIH",
        "CC BY 4.0",
        "https://example.org/medquad",
        True,
    )
    out, _ = run_import(str(DATA / "xml"), "--source", "medquad")
    assert "0 passages added, 0 updated, 6 unchanged" in out
    assert Passage.objects.count() == 6


def test_the_command_lists_files_it_could_not_import_and_exits_with_status_1(db, tmp_path):
    (tmp_path / "good.jsonl").write_text('{"title": "A question?", "text": "An answer."}\n')
    (tmp_path / "bad.xml").write_text("<Document>")
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("import_knowledge", str(tmp_path), "--source", "test", "--no-progress", stdout=out, stderr=err)

    assert raised.value.returncode == 1
    assert "1 files not imported" in str(raised.value)
    assert f"Not imported: {tmp_path / 'bad.xml'}: invalid XML at line 1" in err.getvalue()
    assert "test: 1 files read, 1 passages added" in out.getvalue()
    assert Passage.objects.filter(source__name="test").count() == 1  # the good file was imported


def test_the_command_says_nothing_was_imported_for_a_missing_path(db, tmp_path):
    with pytest.raises(CommandError, match=r"no such file or folder\. Nothing was imported"):
        run_import(str(tmp_path / "nowhere"), "--source", "test")


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--url", "javascript:alert(document.domain)", "--url"),
        ("--url", "ftp://example.org/leaflets", "http:// or https://"),
        ("--licence", "L" * 300, "--licence"),
        ("--source", "S" * 150, "--source"),
    ],
)
def test_source_details_the_admin_would_refuse_are_refused_before_anything_is_read(db, option, value, reason):
    # The attack review stored a javascript: URL and a 150-character name as given (on PostgreSQL the
    # long ones would have failed the whole import at the end).
    args = [str(DATA / "xml"), "--source", "medquad", option, value]
    with pytest.raises(CommandError, match=re.escape(reason)):
        run_import(*args)
    assert not KnowledgeSource.objects.exists() and not Passage.objects.exists()


# --- the real MedQuAD folder, when there is a local copy ---------------------------------------


@pytest.mark.skipif(not MEDQUAD.is_dir(), reason=f"no local MedQuAD copy at {MEDQUAD}")
def test_every_file_of_the_local_medquad_copy_parses():
    """Reads only (no database): every root and layout of every subset, ~1.5 s."""
    pairs: collections.Counter[str] = collections.Counter()
    skipped = 0
    ids: set[str] = set()
    for path in iter_files(MEDQUAD):
        records = read_file(path)
        pairs[path.relative_to(MEDQUAD).parts[0]] += len(records)
        skipped += records.skipped
        ids.update(record.external_id for record in records)
        assert all(record.focus and record.title and record.text for record in records), path

    assert len(pairs) == 8, pairs
    assert all(count > 200 for count in pairs.values()), pairs
    assert 15_000 <= sum(pairs.values()) <= 17_000
    assert len(ids) == sum(pairs.values())  # external ids are unique across the subsets
    assert skipped < 20


@pytest.mark.parametrize(
    "line,reason",
    [
        ('{"id": "n1", "title": "Nul", "text": "text \\u0000 here"}', "NUL"),
        ('{"id": "s1", "title": "Surro \\ud800", "text": "text"}', "surrogate"),
        ('{"id": "u1", "title": "Link", "text": "text", "url": "JaVaScRiPt:alert(1)"}', "http or https"),
        ('{"id": "b1", "title": "Big", "text": "' + "x" * 70_000 + '"}', "at most 60000"),
    ],
)
def test_a_jsonl_file_the_database_or_the_answers_cannot_use_is_reported_and_the_rest_imports(
    db, tmp_path, line, reason
):
    from knowledge.importers import import_knowledge
    from knowledge.models import Passage

    (tmp_path / "bad.jsonl").write_text(line + "\n", encoding="utf-8")
    (tmp_path / "good.jsonl").write_text('{"id": "g1", "title": "Good", "text": "Fine text."}\n', encoding="utf-8")
    report = import_knowledge(tmp_path, "clinic")
    assert [(path.name, reason in why) for path, why in report.problems] == [("bad.jsonl", True)]
    assert list(Passage.objects.values_list("external_id", flat=True)) == ["g1"]


# --- symbolic links -------------------------------------------------------------------------------


def test_links_in_an_imported_folder_are_reported_and_never_followed(db, tmp_path):
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    secret = outside / "secret.txt"
    secret.write_text("# Private notes\n\nNot for the knowledge base.")
    (outside / "private" / "more.md").write_text("# More\n\nAlso private.")
    folder = tmp_path / "leaflets"
    folder.mkdir()
    (folder / "good.jsonl").write_text('{"id": "ok", "title": "A good line", "text": "Imported."}\n')
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "notes.md").symlink_to(secret)
    (folder / "elsewhere").symlink_to(outside / "private", target_is_directory=True)

    report = import_knowledge(folder, "test")

    assert report.problems == [
        (folder / "elsewhere", "a symbolic link to a folder: not followed"),
        (folder / "notes.md", "a symbolic link: not read"),
        (folder / "passwd.txt", "a symbolic link: not read"),
    ]
    assert list(passages()) == ["ok"]
    assert not Passage.objects.filter(text__contains="private").exists()
    assert not Passage.objects.filter(text__contains="root:").exists()
    assert iter_files(folder) == [folder / "good.jsonl"]


def test_a_folder_of_nothing_but_links_imports_nothing_and_says_why(db, tmp_path):
    (tmp_path / "passwd.txt").symlink_to("/etc/passwd")
    report = import_knowledge(tmp_path, "test")
    assert report.problems == [(tmp_path / "passwd.txt", "a symbolic link: not read")]
    assert not KnowledgeSource.objects.exists()


def test_the_path_named_on_the_command_line_may_itself_be_a_link(db, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "good.jsonl").write_text('{"id": "ok", "title": "A good line", "text": "Imported."}\n')
    (tmp_path / "named").symlink_to(real, target_is_directory=True)
    report = import_knowledge(tmp_path / "named", "test")
    assert (report.files, report.problems) == (1, [])


# --- words the source ran together -------------------------------------------------------------


def common_text(template: str, times: int = 25) -> list[str]:
    """A source's worth of one sentence pattern: enough for its words to count as common."""
    return [template.format(n=n) for n in range(times)]


def test_words_a_source_ran_together_are_parted_by_the_dash_they_lost():
    from knowledge.text import glued_words, unglue

    texts = common_text("Pneumonia is an infection of the lungs, case {n}. The chest is examined. We predict a spiral.")
    texts.append("Community-acquired pneumoniathe most common type of pneumoniaare treated at home.")
    glued = glued_words(texts)
    assert (
        unglue(texts[-1], glued)
        == "Community-acquired pneumonia—the most common type of pneumonia—are treated at home."
    )
    # Real words are left alone: a rare word whose head is common but whose ending makes a real word.
    assert glued_words([*texts, "The predictor and the spiralis worm."]).keys() == glued.keys()
    # A handful of leaflets is not enough to tell.
    assert glued_words(texts[-3:]) == {}


def test_words_a_source_ran_together_where_links_were_are_parted_by_spaces():
    from knowledge.text import glued_words, unglue

    texts = common_text(
        "Blood from genes or the diet, case {n}, changes system activity; we need less salt and a downturn."
    )
    texts.append("Changes fromgenesor the diet alter systemactivity,salt and 3percent of cases.")
    glued = glued_words(texts)
    assert (
        unglue(texts[-1], glued) == "Changes from genes or the diet alter system activity, salt and 3 percent of cases."
    )
    # Real compound words stay whole, though their parts are common words written side by side.
    assert unglue("It is needless to say.", glued_words([*texts, "It is needless to say."])) == "It is needless to say."
    # Web addresses are left as written; a bracket or a stop gets its space back, except in a name.
    assert unglue("See www.systemactivity.gov and site.gov/systemactivity/.", glued) == (
        "See www.systemactivity.gov and site.gov/systemactivity/."
    )
    assert unglue("The atria (AY-tree-uh)to beat.Although Cancer.Net helps.", {}) == (
        "The atria (AY-tree-uh) to beat. Although Cancer.Net helps."
    )


def test_a_condition_run_into_what_it_means_lost_a_dash_and_a_repeated_glue_is_still_parted():
    from knowledge.text import glued_words, unglue

    texts = common_text("Cirrhosis—scarring of the liver, case {n}. The body may heal.")
    # The same glued text, copied into several pages of a source.
    texts += ["Some have cirrhosisscarring now.", "In the bodythe cells rest."] * 2 + ["In the bodythe cells."]
    glued = glued_words(texts)
    assert unglue("Some have cirrhosisscarring now.", glued) == "Some have cirrhosis—scarring now."
    assert unglue("In the bodythe cells rest.", glued) == "In the body—the cells rest."


def test_an_import_parts_run_together_words_over_the_whole_source(db, tmp_path):
    lines = [
        {"id": str(n), "title": f"Question {n}", "text": f"Pneumonia is an infection of the lungs, case {n}."}
        for n in range(25)
    ]
    lines.append({"id": "glued", "title": "Who is treated at home?", "text": "Most pneumoniaare treated at home."})
    (tmp_path / "source.jsonl").write_text("\n".join(map(json.dumps, lines)), encoding="utf-8")
    import_knowledge(tmp_path / "source.jsonl", "test")
    assert passages()["glued"].text == "Most pneumonia—are treated at home."


def test_headings_a_source_runs_into_its_answers_are_dropped(db, tmp_path):
    from knowledge.text import drop_inline_headings

    text = (
        "Swollen Ankles Ankles swell when fluid collects. Knees The knees bear most weight. "
        "Stiffness and Pain Symptoms range from mild to severe. In Paget's disease, however, bone grows fast. "
        "Could It Spread to Others? It cannot. Living Well With It Many people stay active."
    )
    assert drop_inline_headings(text, "Swollen Ankles") == (
        "Ankles swell when fluid collects. The knees bear most weight. Symptoms range from mild to severe. "
        "In Paget's disease, however, bone grows fast. Could It Spread to Others? It cannot. Many people stay active."
    )
    # On import, only for the source known to write them so.
    answer = "Hips The hips carry weight."
    for source in ("NIHSeniorHealth", "GARD"):
        (tmp_path / f"{source}.xml").write_text(
            f'<Document id="{source}" source="{source}"><Focus>Hip pain</Focus><QAPairs><QAPair pid="1">'
            f'<Question qtype="information">What is hip pain?</Question><Answer>{answer}</Answer>'
            "</QAPair></QAPairs></Document>"
        )
    import_knowledge(tmp_path, "test")
    texts = {passage.external_id.split("/")[0]: passage.text for passage in passages().values()}
    assert texts == {"NIHSeniorHealth": "The hips carry weight.", "GARD": answer}


def test_pronunciation_guides_are_left_out_of_imported_answers(db, tmp_path):
    from knowledge.text import without_pronunciations

    assert without_pronunciations("Angina (an-JI-nuh or AN-juh-nuh) is chest pain.") == "Angina is chest pain."
    # Brackets that say something stay: abbreviations, a prefix and a word, ordinary hyphenated words.
    kept = "Give G-CSF (G-CSF), poly (ADP-ribose) and (anti-CCP) tests (long-term) for (AR-HIES)."
    assert without_pronunciations(kept) == kept
    (tmp_path / "heart.xml").write_text(
        '<Document id="0001" source="NHLBI"><Focus>Atrial Fibrillation</Focus><QAPairs><QAPair pid="1">'
        '<Question qtype="information">What is (are) Atrial Fibrillation ?</Question><Answer>Atrial fibrillation '
        "(A-tre-al fi-bri-LA-shun), or AF, is the most common type of arrhythmia (ah-RITH-me-ah).</Answer>"
        "</QAPair></QAPairs></Document>"
    )
    import_knowledge(tmp_path, "test")
    [passage] = passages().values()
    assert passage.text == "Atrial fibrillation, or AF, is the most common type of arrhythmia."
