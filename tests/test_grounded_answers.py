"""Answers come from the knowledge base: the model may word them, the faithfulness gate checks
every sentence, and anything it cannot support is replaced by the passages themselves."""

from __future__ import annotations

import pytest

from inference import pipeline
from inference.grounding import SEEK_HELP, sentences
from inference.models import FallbackRule
from inference.pipeline import Fallback

FAITHFUL = (
    "Gout attacks are treated with anti-inflammatory medicines such as naproxen, or with colchicine, "
    "started as early as possible. Resting and cooling the joint helps."
)


def test_a_faithful_model_answer_is_served_with_its_citations(curated_data, knowledge_base, scripted_model):
    fake = scripted_model(FAITHFUL)
    result = pipeline.answer("How is gout treated?")
    assert result.source == "model"
    assert result.text == FAITHFUL
    assert result.fallback == Fallback.NONE
    assert result.citations[0] == {
        "title": "How is gout treated?",
        "publisher": "Test Clinic",
        "url": "https://clinic.example/gout-2",
        "source": "Test leaflets",
    }
    # The passage reached the prompt: the model answers from it, not from memory.
    assert "colchicine" in fake.requests[0].grounding


def test_the_gate_replaces_an_answer_with_an_invented_drug_name_by_the_extract(
    curated_data, knowledge_base, scripted_model
):
    scripted_model(
        "Gout attacks are treated with anti-inflammatory medicines such as naproxen. "
        "Doctors also give zyloprofen injections to cure gout for good."
    )
    result = pipeline.answer("How is gout treated?")
    assert result.source == "extract"
    assert result.fallback == Fallback.UNFAITHFUL
    assert result.unsupported == ["Doctors also give zyloprofen injections to cure gout for good."]
    assert "zyloprofen" not in result.text
    assert "colchicine" in result.text  # the passage's own sentences
    assert result.citations[0]["url"] == "https://clinic.example/gout-2"


@pytest.mark.parametrize(
    "invented",
    [
        "Gout attacks are treated with naproxen at 500 mg twice a day.",  # a dose
        "Gout is treated with naproxen, and it usually starts at age 40.",  # an age
        "Gout is a kind of arthritis caused by a Streptococcus infection of the joint.",  # an organism
        "Gout attacks are usually treated with colchicine or with methotrexate.",  # a drug not in the passage
    ],
)
def test_numbers_and_names_absent_from_the_passages_fail_the_gate(
    curated_data, knowledge_base, scripted_model, invented
):
    scripted_model(invented)
    result = pipeline.answer("How is gout treated?")
    assert result.source == "extract"
    assert result.unsupported == [invented]


def test_without_the_gate_the_invented_answer_gets_through_the_ablation(curated_data, knowledge_base, scripted_model):
    scripted_model("Gout attacks are usually treated with colchicine or with methotrexate.")
    assert pipeline.answer("How is gout treated?", gate=False).source == "model"


def test_with_no_passage_no_model_text_is_produced(curated_data, knowledge_base, scripted_model):
    fake = scripted_model("Zollinger syndrome is cured with zylofenamab.")
    result = pipeline.answer("What are the treatments for Zollinger-Ellison syndrome?")
    assert result.source == "unavailable"
    assert "reliable answer" in result.text
    assert result.citations == []
    assert fake.requests == []  # the model never ran


def test_with_the_model_off_an_imported_passage_answers_as_an_extract(curated_data, knowledge_base):
    result = pipeline.answer("how do you treat gout?")
    assert result.source == "extract"
    assert result.fallback == Fallback.MODEL_OFF
    assert "colchicine" in result.text
    assert [c["title"] for c in result.citations] == ["How is gout treated?"]


def test_a_curated_entry_answers_whole_with_medbot_as_its_publisher(curated_data):
    result = pipeline.answer("What are the symptoms of asthma?")
    assert result.source == "rule"
    assert result.citations[0]["publisher"] == "MedBot"


def test_a_refused_answer_on_a_curated_topic_gets_the_whole_entry(curated_data, scripted_model):
    # A fresh install knows only the curated entries, and the untrained base model invents.
    scripted_model("Asthma is cured for good by zyloprofen inhalers.")
    result = pipeline.answer("What are the symptoms of asthma?")
    assert result.source == "rule" and result.fallback == Fallback.UNFAITHFUL
    assert "zyloprofen" not in result.text
    assert result.citations[0]["publisher"] == "MedBot"
    assert result.text == FallbackRule.objects.get(title=result.matched_rule).answer


def test_a_refused_answer_on_stroke_signs_keeps_the_whole_fast_checklist(curated_data, scripted_model):
    scripted_model("Strokes are prevented by zyloprofen.")
    result = pipeline.answer("What are the warning signs of a stroke?")
    entry = FallbackRule.objects.get(title=result.matched_rule)
    checks = [s for s in sentences(entry.answer) if s.endswith("?")]
    assert checks and all(check in result.text for check in checks)


def test_when_the_model_fails_a_curated_entry_still_answers_whole(curated_data, scripted_model):
    scripted_model(error=RuntimeError("out of memory"))
    result = pipeline.answer("What are the symptoms of asthma?")
    assert result.source == "rule" and result.fallback == Fallback.MODEL_ERROR
    assert result.text == FallbackRule.objects.get(title=result.matched_rule).answer


def test_only_sentences_the_gate_passed_are_streamed_and_the_first_refused_one_stops_the_model(
    curated_data, knowledge_base, scripted_model
):
    model = scripted_model(
        "An attack of gout is treated with colchicine. Gout is cured by zylofenamab in one week. "
        "Resting and cooling the joint helps with the pain of an attack."
    )
    items = list(pipeline.stream_answer("How is gout treated?"))
    stages = [item for item in items if isinstance(item, pipeline.Stage)]
    assert stages == [pipeline.SOURCES, pipeline.WRITING]
    pieces, final = [item for item in items[:-1] if isinstance(item, str)], items[-1]
    # People saw the supported sentence, never the invented one; the model stopped right there.
    assert "".join(pieces) == "An attack of gout is treated with colchicine. "
    assert model.produced < len(model.text.split(" "))
    assert final.source == "extract" and "zylofenamab" not in final.text
    assert final.unsupported == ["Gout is cured by zylofenamab in one week."]


def test_a_refused_last_sentence_is_never_streamed(curated_data, knowledge_base, scripted_model):
    scripted_model("Gout is cured by zylofenamab in one week.")
    items = list(pipeline.stream_answer("How is gout treated?"))
    assert not [item for item in items if isinstance(item, str)]
    assert items[-1].source == "extract" and "zylofenamab" not in items[-1].text


def test_a_timed_out_answer_that_falls_back_is_not_cached(curated_data, knowledge_base, scripted_model):
    scripted_model("Gout is", stopped_by="timeout")
    first = pipeline.answer("How is gout treated?")
    assert first.source == "extract"
    assert first.fallback == Fallback.TIMEOUT and first.fallback_reason.transient
    second = pipeline.answer("How is gout treated?")
    assert not second.cached


def test_a_model_error_falls_back_to_the_passages_and_is_not_cached(curated_data, knowledge_base, scripted_model):
    scripted_model(error=RuntimeError("out of memory"))
    first = pipeline.answer("How is gout treated?")
    assert first.source == "extract" and first.fallback == Fallback.MODEL_ERROR
    assert not pipeline.answer("How is gout treated?").cached


def test_a_refused_answer_is_cached_since_the_same_model_would_write_it_again(
    curated_data, knowledge_base, scripted_model
):
    scripted_model("Gout is cured by zylofenamab in one week.")
    pipeline.answer("How is gout treated?")
    assert pipeline.answer("How is gout treated?").cached


def test_a_follow_up_that_names_nothing_is_searched_with_the_previous_question(curated_data, knowledge_base):
    from inference.prompting import Turn

    history = [Turn("user", "What is gout?"), Turn("assistant", "Gout is a kind of arthritis.")]
    result = pipeline.answer("and how is it treated?", history)
    assert result.source == "extract"
    assert "colchicine" in result.text


def test_a_follow_ups_extract_is_chosen_for_the_topic_it_continues(curated_data, knowledge_base, monkeypatch):
    from inference.prompting import Turn

    history = [Turn("user", "What is gout?"), Turn("assistant", "Gout is a kind of arthritis.")]
    assert pipeline.topic_of("and how is it treated?", history) == "gout\nand how is it treated?"
    assert pipeline.topic_of("What are the symptoms of sarcoidosis?", history).startswith("What are")
    # A condition the knowledge base does not know is still a topic of its own, not "it".
    assert pipeline.topic_of("what lowers the risk of heart disease?", history).startswith("what lowers")
    asked = []
    real = pipeline.extract
    monkeypatch.setattr(pipeline, "extract", lambda question, *args: asked.append(question) or real(question, *args))
    pipeline.answer("and how is it treated?", history)
    assert asked == ["gout\nand how is it treated?"]


def test_disabling_a_source_takes_its_passages_out_of_answers_at_once(curated_data, knowledge_base):
    assert pipeline.answer("how do you treat gout?").source == "extract"
    knowledge_base.enabled = False
    knowledge_base.save()
    result = pipeline.answer("how do you treat gout?")
    assert result.source != "extract"
    assert all(c["source"] != "Test leaflets" for c in result.citations)


def test_an_answer_from_an_index_still_being_rebuilt_is_not_cached_as_the_new_knowledge(
    curated_data, knowledge_base, monkeypatch
):
    from inference.retrieval import retriever

    first = pipeline.answer("how do you treat gout?")
    assert first.source == "extract"
    # The source is disabled, but (as in a worker with a large index) the rebuild is still running:
    # the old index answers, and its answer must not be cached under the new knowledge version.
    monkeypatch.setattr("inference.retrieval.SYNCHRONOUS_REBUILD_BELOW", 0)
    monkeypatch.setattr(retriever, "_rebuild_in_background", lambda version: None)
    knowledge_base.enabled = False
    knowledge_base.save()
    assert pipeline.answer("how do you treat gout?").cached  # the old index, under its own key
    retriever.reset()  # the rebuild finishes
    after = pipeline.answer("how do you treat gout?")
    assert not after.cached
    assert all(c["source"] != "Test leaflets" for c in after.citations)


def test_a_follow_up_asks_its_own_question_about_the_previous_topic(curated_data, knowledge_base):
    # The fresh eye: "what are the symptoms of asthma?", then "how is it treated?", got the symptoms
    # again: the follow-up was searched with the previous question's words, "symptoms" among them.
    from inference.prompting import Turn

    history = [Turn("user", "What are the symptoms of gout?"), Turn("assistant", "A hot, swollen joint.")]
    assert pipeline.topic_of("how is it treated?", history) == "gout\nhow is it treated?"
    assert "colchicine" in pipeline.answer("how is it treated?", history, use_model=False).text


def test_a_follow_ups_own_words_must_be_in_what_answers_it(curated_data, knowledge_base):
    from inference.prompting import Turn

    history = [Turn("user", "got stung by a bee and it itches"), Turn("assistant", "Most stings settle.")]
    result = pipeline.answer("and what about my knees?", history, use_model=False)
    assert result.source == "unavailable", result.citations  # not the stings entry again
    gout = [Turn("user", "What is gout?"), Turn("assistant", "Gout is a kind of arthritis.")]
    assert "colchicine" in pipeline.answer("and how is it treated?", gout, use_model=False).text


def test_a_chain_of_follow_ups_stays_on_the_topic_last_named(curated_data, knowledge_base):
    from inference.prompting import Turn

    history = [
        Turn("user", "What is gout?"),
        Turn("assistant", "Gout is a kind of arthritis."),
        Turn("user", "is it hereditary?"),
        Turn("assistant", "I don't have a reliable answer."),
        Turn("user", "thanks"),
        Turn("assistant", "You're welcome."),
    ]
    assert "colchicine" in pipeline.answer("how is it treated?", history, use_model=False).text


def test_a_follow_up_about_someone_named_before_is_answered_on_their_topic(curated_data, knowledge_base):
    from inference.prompting import Turn

    history = [Turn("user", "my dad has gout"), Turn("assistant", "Gout is a kind of arthritis.")]
    # "alcohol" names the alcohol entry, but "him" points back to the dad with gout...
    assert pipeline.topic_of("is alcohol ok for him?", history) == "gout\nis alcohol ok for him?"
    # ...while the same question about the asker is a question of its own.
    assert pipeline.topic_of("is alcohol ok for me?", history) == "is alcohol ok for me?"
    result = pipeline.answer("what helps him?", history, use_model=False)
    assert result.source == "extract" and "colchicine" in result.text


def test_a_follow_up_naming_a_new_topic_is_not_answered_with_the_previous_topic(curated_data, knowledge_base):
    from inference.prompting import Turn

    history = [Turn("user", "What is gout?"), Turn("assistant", "Gout is a kind of arthritis.")]
    result = pipeline.answer("What are the symptoms of sarcoidosis?", history)
    assert result.source == "unavailable"
    assert result.citations == []


def test_a_citation_never_carries_a_script_address(curated_data, knowledge_base):
    from knowledge.models import Passage

    Passage.objects.filter(external_id="gout-2").update(url="javascript:alert(1)")
    knowledge_base.save()  # signals the change, as the admin does
    result = pipeline.answer("how do you treat gout?")
    assert result.source == "extract"
    assert result.citations[0]["url"] == ""


def test_a_change_made_while_the_cache_was_down_is_signalled_once_it_is_back(db, monkeypatch):
    from knowledge import versions
    from medbot_site import cache_guard

    before = versions.current(versions.KNOWLEDGE)
    monkeypatch.setattr(cache_guard, "safe_set", lambda *args, **kwargs: False)  # the cache is down
    versions.bump(versions.KNOWLEDGE)
    assert versions.current(versions.KNOWLEDGE) == before
    monkeypatch.undo()  # the cache is back: the next read sends the change first
    assert versions.current(versions.KNOWLEDGE) != before


def test_a_source_disabled_while_the_cache_is_down_leaves_the_answers(curated_data, knowledge_base, monkeypatch):
    # The attack review: with Redis down the version was "unknown" and the worker kept its index for
    # good, answering from a source a curator had disabled. The tables' fingerprint still tells.
    from knowledge import versions
    from medbot_site import cache_guard

    assert pipeline.answer("how do you treat gout?", use_model=False).source == "extract"
    monkeypatch.setattr(cache_guard, "available", lambda: False)  # the cache is down...
    monkeypatch.setattr(cache_guard, "safe_set", lambda *args, **kwargs: False)  # ...so no signal gets through
    knowledge_base.enabled = False
    knowledge_base.save()
    versions.forget_fingerprints()  # as after SHARED_FINGERPRINT_SECONDS
    result = pipeline.answer("how do you treat gout?", use_model=False)
    assert all(citation["source"] != "Test leaflets" for citation in result.citations)


@pytest.mark.django_db(transaction=True)  # the warm-up thread reads the database on its own connection
def test_a_serving_process_builds_its_knowledge_index_before_the_first_question(curated_data):
    from inference.retrieval import retriever

    retriever.reset()
    pipeline.warm_up().join(30)
    assert retriever._index is not None and len(retriever._index) > 0


def test_the_stored_sources_and_triage_levels_are_the_ones_the_pipeline_gives() -> None:
    from chat.models import Source, TriageLevel
    from inference import triage

    assert set(Source.values) == {source.value for source in pipeline.Source}
    assert set(TriageLevel.values) == set(triage.LEVELS)


@pytest.mark.django_db(transaction=True)
def test_the_index_warm_up_waits_while_the_model_loads(curated_data, monkeypatch):
    # Both are Python-heavy and share the interpreter lock: the model first (cold start 4.95 -> 4.71 s).
    import time

    from inference.retrieval import retriever

    state = {"now": "loading"}

    class Loading:
        def start(self) -> None:
            pass

        @property
        def state(self) -> str:
            return state["now"]

    monkeypatch.setattr(pipeline, "get_manager", Loading)
    retriever.reset()
    thread = pipeline.warm_up()
    time.sleep(0.3)
    assert retriever._index is None  # still waiting for the model
    state["now"] = "ready"
    thread.join(30)
    assert retriever._index is not None and len(retriever._index) > 0


@pytest.mark.parametrize(
    "hidden",
    [
        "I have crushing chest pain\u2028and can't breathe",  # a line separator between words
        "I have crushing chest pain\u2029and can't breathe",
        "I want to ki\u00adll my\u00adself tonight",  # soft hyphens inside the words
        "I want to k\u200bill mys\u2066elf tonight",
    ],
)
def test_invisible_characters_do_not_hide_an_emergency(curated_data, hidden):
    assert pipeline.answer(hidden).source == "emergency"


def test_an_extract_never_ends_on_a_list_opening_without_its_items():
    from inference.grounding import select_sentences

    text = (
        "Asthma narrows the airways. Common signs and symptoms of asthma include:\nCoughing\nWheezing\n"
        "Symptoms vary over time and from person to person."
    )
    chosen = select_sentences("What are the symptoms of asthma?", text, 90)
    assert chosen == [
        "Asthma narrows the airways.",
        "Common signs and symptoms of asthma include:",
        "- Coughing",
        "- Wheezing",
        "Symptoms vary over time and from person to person.",
    ]
    # With no room for its items, the opening goes too.
    short = select_sentences("What are the symptoms of asthma?", text.replace("Coughing", "Coughing " * 40), 10)
    assert not any(sentence.endswith(":") for sentence in short)


def test_a_list_opened_by_an_unfinished_sentence_comes_with_its_items():
    # The fresh eye: "how is hepatitis c spread" got "...more likely to are people who Also, men who...":
    # an opener without a colon lost its whole list.
    from inference.grounding import select_sentences

    text = (
        "Anyone can catch example fever, but it is more likely in people who\n- share needles\n"
        "- had a blood transfusion before 1992\n- were born to a mother with it\n"
        "Also, health workers are more likely to catch example fever."
    )
    chosen = select_sentences("Who is at risk for example fever?", text, 90)
    assert chosen[:4] == [
        "Anyone can catch example fever, but it is more likely in people who",
        "- share needles",
        "- had a blood transfusion before 1992",
        "- were born to a mother with it",
    ]


def test_a_question_heading_after_a_list_is_not_one_of_its_items():
    # The fresh eye's heart attack answer listed "- Angina or a Heart Attack?", the next part's heading.
    from inference.grounding import select_sentences

    text = "Other signs may include:\nSweating\nFeeling sick\nAngina or a Heart Attack?\nAngina is chest pain."
    chosen = select_sentences("What are the signs of a heart attack?", text, 90)
    assert "- Sweating" in chosen and "- Feeling sick" in chosen
    assert not any("Angina or a Heart Attack" in sentence and sentence.startswith("- ") for sentence in chosen)


def test_a_list_run_together_on_one_line_comes_out_as_a_list_with_its_opener():
    from inference.grounding import extract
    from knowledge.search import Document

    text = (
        "Celiac disease is an immune reaction to gluten. Its signs vary with several factors, including\n"
        "- how long a person was breastfed - the age gluten was first eaten - the amount of gluten eaten\n"
        "Some people have no symptoms at all."
    )
    passage = Document(key="passage:1", title="t", focus="Celiac disease", text=text, question_type="symptoms")
    answer, _ = extract("Why do the signs of celiac disease vary?", [passage], 90)
    assert (
        "Its signs vary with several factors, including\n- how long a person was breastfed\n"
        "- the age gluten was first eaten\n- the amount of gluten eaten" in answer
    )


def test_a_list_inside_a_list_keeps_its_own_items():
    from inference.grounding import select_sentences

    text = (
        "Smoking is the main cause of lung cancer. The following are risk factors for lung cancer:\n"
        "- Smoking cigarettes - Breathing secondhand smoke - The following protect against lung cancer:"
        " - Not smoking - Quitting smoking"
    )
    chosen = select_sentences("What increases the risk of lung cancer?", text, 40)
    assert "- Not smoking" not in chosen[: chosen.index("- Breathing secondhand smoke") + 2]
    assert chosen[chosen.index("The following are risk factors for lung cancer:") + 1 :][:2] == [
        "- Smoking cigarettes",
        "- Breathing secondhand smoke",
    ]
    opener = "- The following protect against lung cancer:"
    assert opener not in chosen or chosen[chosen.index(opener) + 1] == "- Not smoking"


def test_a_symptom_table_is_listed_without_the_sources_notes_on_reading_it():
    from inference.grounding import extract
    from knowledge.importers import clean_answer
    from knowledge.search import Document

    # As GARD's answers read in MedQuAD (in our words): a table flattened into one line, then notes.
    raw = (
        "What are the signs and symptoms of Example syndrome? The Human Phenotype Ontology provides the "
        "following list of signs and symptoms for Example syndrome. You can use the MedlinePlus Medical "
        "Dictionary to look up the definitions for these medical terms. Signs and Symptoms Approximate number "
        "of patients (when available) Short stature - Seizures - Dry skin - The Human Phenotype Ontology (HPO) "
        "has collected information on how often a sign or symptom occurs in a condition. The frequency may "
        "also be listed as a fraction."
    )
    passage = Document(key="passage:1", title="t", focus="Example syndrome", text=clean_answer(raw))
    answer, _ = extract("What are the symptoms of Example syndrome?", [passage], 90)
    assert answer == (
        "The Human Phenotype Ontology provides the following list of signs and symptoms for Example syndrome.\n"
        "- Short stature\n- Seizures\n- Dry skin"
    )


@pytest.mark.parametrize(
    "line",
    [
        "Avoid ibuprofen unless a doctor advises it, as it may raise the risk of skin infections.",
        "Get medical advice if you are pregnant or have a weak immune system.",
        "See an optometrist or doctor if symptoms persist.",
        "Please speak to a doctor if low mood lasts more than a couple of weeks.",
        "Book a doctor's appointment soon rather than waiting for it to go away.",
    ],
)
def test_every_way_our_entries_say_where_to_get_help_is_kept_in_an_extract(line):
    assert SEEK_HELP.search(line)


def test_no_curated_entry_loses_a_line_about_getting_help_in_its_extract(curated_data):
    from inference.grounding import extract
    from inference.retrieval import load_documents

    entries = [d for d in load_documents() if d.key.startswith("rule:")]
    assert len(entries) > 50
    for entry in entries:
        # A question about something else: only the help lines are kept for their own sake.
        text, _ = extract("What colour is the sky on Mars?", [entry], 90)
        help_lines = [s for s in sentences(entry.text) if SEEK_HELP.search(s)]
        assert all(line in text for line in help_lines), entry.title


def test_an_extract_leaves_out_how_to_work_the_source_pages_videos():
    from inference.grounding import select_sentences

    text = (
        "Glaucoma damages the nerve at the back of the eye and can lead to blindness. "
        "To reduce the video, press the Escape (Esc) button on your keyboard. "
        "To enlarge the videos on this page, click the brackets in the corner. See a glossary of glaucoma terms."
    )
    assert select_sentences("What is glaucoma?", text, 200) == [
        "Glaucoma damages the nerve at the back of the eye and can lead to blindness."
    ]


@pytest.mark.parametrize(
    ("glued", "sentence"),
    [
        ("Early Symptoms Early symptoms of the disease are subtle.", "Early symptoms of the disease are subtle."),
        ("Four Primary Symptoms The four primary symptoms are tremor and rigidity.", "The four primary"),
        ("As the Disease Progresses As the disease progresses, walking gets harder.", "As the disease progresses,"),
        ("Other Symptoms Some people also have a rash on the arms.", "Some people also have"),
        ("Medications Can Treat Symptoms There is no known cure for it.", "There is no known cure"),
    ],
)
def test_a_page_heading_glued_to_a_sentence_is_left_out(glued, sentence):
    assert sentences(f"It starts slowly. {glued}")[1].startswith(sentence)


def test_ordinary_sentences_keep_their_capitalised_first_words():
    for text in (
        "Parkinson's disease affects movement.",
        "New treatments are being tested.",
        "The Mayo Clinic helps.",
        "Medicare Part A is hospital insurance for people over 65.",
        "The Hepatitis A vaccine and the hepatitis B vaccine protect you.",
        "Diseases That Put You at Risk Many diseases raise the risk.",  # no sentence starts at "You at"
        "Stage II The tumor is larger than 2 centimeters.",  # the label says which stage
    ):
        assert sentences(text) == [text]


def test_an_outlook_question_gets_the_sentences_that_give_the_outlook_in_other_words():
    from inference.grounding import select_sentences

    text = (
        "Weakness spreads from one part of the body to others. Walking and swallowing get harder. "
        "Speaking gets harder as well. Most people die within 3 to 5 years of the first symptoms."
    )
    chosen = select_sentences("What is the life expectancy with this disease?", text, 25)
    assert "Most people die within 3 to 5 years of the first symptoms." in chosen


def test_a_question_about_catching_it_gets_the_sentences_that_say_how_it_spreads():
    from inference.grounding import select_sentences

    text = (
        "The illness is caused by a bacterium. The bacteria usually attack the lungs. It can also reach the spine. "
        "Treatment takes six to nine months. People with the active illness may spread it to those they live with."
    )
    chosen = select_sentences("Is it contagious?", text, 25)
    assert "People with the active illness may spread it to those they live with." in chosen


def test_a_list_run_into_its_opening_sentence_and_said_again_run_together_is_listed_once():
    from inference.grounding import select_sentences

    text = (
        "Anyone can develop glaucoma at any age. They include - Adults over 60 - People with diabetes - Smokers. "
        "Adults over 60 People with diabetes Smokers. Regular eye tests find it early."
    )
    assert select_sentences("Who is at risk for glaucoma?", text, 60) == [
        "Anyone can develop glaucoma at any age.",
        "They include:",
        "- Adults over 60",
        "- People with diabetes",
        "- Smokers.",
        "Regular eye tests find it early.",
    ]


def test_a_passage_that_only_says_where_else_to_read_gives_way_to_one_that_answers():
    from inference.grounding import extract
    from knowledge.search import Document

    referral = Document(
        key="passage:1",
        title="Is lupus inherited?",
        focus="Lupus",
        question_type="inheritance",
        text=(
            "The Lupus Foundation has a page called Is lupus hereditary? that provides a good overview. "
            "Medscape Reference has an in-depth review of the genetics of lupus that was written for professionals. "
            "You may have to register to view the article, but registration is free."
        ),
    )
    overview = Document(
        key="passage:2",
        title="Lupus",
        focus="Lupus",
        question_type="information",
        text="Lupus is an autoimmune disease. Genes are thought to play a part, with other factors.",
    )
    text, used = extract("Is lupus hereditary?", [referral, overview])
    assert used == [overview]
    assert "Genes are thought to play a part" in text


def test_insurance_sentences_answer_only_a_question_about_paying():
    from inference.grounding import select_sentences

    text = (
        "Most insurance plans will cover treatment for anxiety disorders. "
        "Talking therapy and medicines both treat anxiety disorders well. "
        "People with it find it hard to pay attention."
    )
    assert select_sentences("How is anxiety disorder treated?", text, 60) == [
        "Talking therapy and medicines both treat anxiety disorders well.",
        "People with it find it hard to pay attention.",
    ]
    assert "Most insurance plans will cover treatment for anxiety disorders." in select_sentences(
        "Does insurance pay for anxiety treatment?", text, 60
    )


def test_an_extract_never_shows_a_sentence_that_points_back_without_what_it_points_to():
    from inference.grounding import select_sentences

    before = (
        "Some people, especially those who have had a stroke or who are at high risk of one, need a regular "
        "exchange transfusion in hospital."
    )
    pointing = "This procedure replaces some of the blood with donated blood."
    text = f"Sickle cell disease is treated by a care team. {before} {pointing} Hydroxyurea lowers pain crises."
    # The one sentence that answers brings what it points to, even over the budget.
    assert select_sentences("what does the procedure replace with donated blood?", text, 9) == [before, pointing]
    # Beside another sentence, with no room for what it points to, it goes.
    chosen = select_sentences("what does the procedure replace with donated blood?", text, 20)
    assert chosen and pointing not in chosen


def test_an_urgent_message_naming_no_topic_is_answered_on_the_red_flag_it_raised(curated_data, monkeypatch):
    # When the message finds nothing ("calf swollen after a long flight" names no topic), the urgent
    # rule it fired does: the banner comes with its topic's answer, not "nothing more to add".
    monkeypatch.setattr(pipeline, "find_passages", lambda question, history=(): [])
    result = pipeline.answer("I'm 28 weeks pregnant and it burns when I pee", use_model=False)
    assert result.triage_level == "urgent"
    assert result.source == "rule" and result.citations[0]["title"] == "Urinary tract infection (UTI)"
    # A question is answered on what it asks, or not at all: never on the rule it happened to fire.
    asked = pipeline.answer("I'm 28 weeks pregnant and it burns when I pee, is that normal?", use_model=False)
    assert asked.triage_level == "urgent" and asked.source == "unavailable"


def test_a_sentence_about_a_picture_is_left_out_of_an_extract():
    from inference.grounding import select_sentences

    text = "A clot can break off and travel to the lungs. The animation shows how a clot travels."
    assert select_sentences("can a clot travel?", text, 90) == ["A clot can break off and travel to the lungs."]


def test_a_list_of_labels_each_explained_is_answered_with_the_labels():
    # The fresh eye got "Common signs include: - Coughing." and nothing else: each item of the source's
    # list is a label followed by what it means, and only the first label was taken as the list.
    from inference.grounding import extract
    from knowledge.search import Document

    text = (
        "Typical signs of example disease include:\n"
        "Fever. Fever from example disease often rises in the evening and falls again by the next morning, "
        "so it is easy to miss.\n"
        "Tiredness. Many people feel worn out for weeks on end, even after the fever has gone and they are "
        "back at work.\n"
        "Sore joints. The knees and wrists ache the most, and they may swell a little and feel stiff first "
        "thing in the morning.\n"
        "Not everyone with example disease has all of these signs. A blood test confirms it."
    )
    passage = Document(key="passage:1", title="t", focus="Example disease", text=text, question_type="symptoms")
    answer, _ = extract("What are the symptoms of example disease?", [passage], 90)
    assert answer.startswith("Typical signs of example disease include:\n- Fever.\n")
    assert "\n- Tiredness." in answer and "\n- Sore joints." in answer


def test_a_list_said_again_run_together_after_its_items_is_read_once():
    # Flattened pages repeat a list without its dashes: "are - a - b. a b."
    text = (
        "The usual signs of example disease are - a rash that itches - a dry cough. a rash that itches a dry cough. "
        "They tend to start in spring."
    )
    assert sentences(text) == [
        "The usual signs of example disease are:",
        "- a rash that itches",
        "- a dry cough.",
        "They tend to start in spring.",
    ]


def test_an_item_whose_list_does_not_fit_is_left_out_of_the_extract():
    # The fresh eye's COPD answer ended in a stray "- people with severe COPD.": the item was chosen for
    # its words, and its list was too long to come with it.
    from inference.grounding import _with_whole_lists

    lines = [
        "Example disease is diagnosed with a breathing test.",
        "There are four grades of example disease:",
        "- people at risk of example disease who breathe normally on the test and feel quite well",
        "- people with mild example disease",
        "- people with severe example disease.",
    ]
    assert _with_whole_lists([(0, lines[0]), (4, lines[4])], lines, used=13, max_words=10) == [lines[0]]


def test_of_a_topics_passages_of_one_type_the_one_that_never_names_the_topic_comes_last():
    # The fresh eye got "A week or two after the blisters erupt, the sores crust over" for the symptoms
    # of shingles: a page's later part, first for being short under the title all three share.
    from knowledge.search import Document, KnowledgeIndex

    title = "What are the symptoms of Example pox?"
    later = Document(
        key="passage:1",
        title=title,
        focus="Example pox",
        text="After a week the spots crust over.",
        question_type="symptoms",
    )
    first = Document(
        key="passage:2",
        title=title,
        focus="Example pox",
        question_type="symptoms",
        text="Example pox starts with a fever and an itchy rash of small spots that turn into blisters over "
        "two or three days, first on the chest and back and then on the face, arms and legs.",
    )
    other = Document(
        key="passage:3",
        title="What is Example pox?",
        focus="Example pox",
        text="Example pox is an infection.",
        question_type="information",
    )
    hits = KnowledgeIndex([later, first, other]).search("what are the symptoms of example pox?")
    assert hits[0].document.key == "passage:2"


def test_the_same_passage_in_two_sources_is_said_once():
    # The attack review: "Flarnitis is caused by flarn bacteria.\n\nFlarnitis is caused by flarn bacteria."
    from inference.grounding import extract
    from knowledge.search import Document

    text = "Example fever is caused by example bacteria. It spreads in water."
    first = Document(key="passage:1", title="Example fever", focus="Example fever", text=text, source="A")
    second = Document(key="passage:2", title="Example fever", focus="Example fever", text=text, source="B")
    answer, used = extract("What causes example fever?", [first, second], 90)
    assert answer.count("caused by example bacteria") == 1
    assert used == [first]


def test_a_list_of_questions_to_ask_the_doctor_is_not_the_answer():
    # The attack review: "how is high blood pressure diagnosed" got "(Be sure the doctor knows about any
    # allergies..." from a passage of questions to ask, filed under the same type.
    from knowledge.search import Document, KnowledgeIndex

    title = "How to diagnose Example pressure?"
    questions = Document(
        key="passage:1",
        title=title,
        focus="Example pressure",
        question_type="exams and tests",
        text="Questions to ask your doctor about example pressure: What is my reading? What is my goal? "
        "Is my example pressure under control? Should I check it at home? (Be sure the doctor knows your medicines.)",
    )
    answer = Document(
        key="passage:2",
        title=title,
        focus="Example pressure",
        question_type="exams and tests",
        text="Doctors diagnose example pressure when readings taken on several days are all above the limit. "
        "A home monitor can confirm the clinic readings, which some people find raised by the visit itself, "
        "and a week of home readings is often asked for before any treatment is started.",
    )
    hits = KnowledgeIndex([questions, answer]).search("how is example pressure diagnosed?")
    assert hits[0].document.key == "passage:2"
