"""Retrieval: a question's focus and type decide which passage answers, before shared words."""

from __future__ import annotations

import pytest

from inference.retrieval import retriever
from knowledge.search import (
    MAX_QUALIFIERS,
    Document,
    KnowledgeIndex,
    ages_in,
    asked_as,
    question_type,
    spoken_names,
)


def doc(key: str, focus: str, text: str, kind: str = "", synonyms: tuple[str, ...] = ()) -> Document:
    return Document(key=key, title=f"About {focus}", focus=focus, text=text, question_type=kind, synonyms=synonyms)


def test_it_finds_the_question_type_from_its_wording() -> None:
    assert question_type("What are the symptoms of gout?") == "symptoms"
    assert question_type("how do you treat gout") == "treatment"
    assert question_type("Is gout inherited?") == "inheritance"
    assert question_type("what causes gout") == "causes"
    assert question_type("How can I prevent gout?") == "prevention"
    assert question_type("What is gout?") == "information"
    # What gout leads to, not what causes gout; the symptoms wording still wins.
    assert question_type("Does gout cause kidney stones?") == "complications"
    assert question_type("Which symptoms does gout cause?") == "symptoms"


def test_a_drug_the_passage_never_mentions_keeps_the_general_entry_from_answering(curated_data, knowledge_base):
    # The knowledge base has a general high-blood-pressure entry, but nothing about ibuprofen.
    hits = retriever.search("Can I take ibuprofen if I have high blood pressure?")
    assert all("ibuprofen" in hit.document.text.lower() for hit in hits)


def test_a_question_on_a_normal_heart_rate_does_not_get_palpitations(curated_data, knowledge_base):
    hits = retriever.search("What is a normal resting heart rate?")
    assert all("palpitation" not in hit.document.title.lower() for hit in hits)


def test_the_passage_of_the_questions_type_wins_over_more_shared_words(curated_data, knowledge_base):
    top = retriever.search("How is gout treated?")[0]
    assert top.document.title == "How is gout treated?"
    assert top.focus_matched and top.type_matched
    assert retriever.search("What is gout?")[0].document.title == "What is gout?"


def test_synonyms_and_british_spellings_name_the_same_focus() -> None:
    index = KnowledgeIndex(
        [
            doc("a", "Anemia", "Anemia means too few red blood cells.", "information", ("low iron blood",)),
            doc("b", "Asthma", "Asthma narrows the airways.", "information"),
        ]
    )
    assert index.search("what is anaemia")[0].document.key == "a"
    assert index.search("tell me about low iron blood")[0].document.key == "a"


def test_a_question_that_also_names_a_second_focus_prefers_the_passage_mentioning_both() -> None:
    index = KnowledgeIndex(
        [
            doc("d1", "Diabetes", "Diabetes means high blood sugar over a long time.", "information"),
            doc("d2", "Diabetes", "Over years diabetes can damage the kidneys and the eyes.", "complications"),
            doc("k", "Kidney disease", "Kidney disease means the kidneys filter less blood."),
        ]
    )
    assert index.search("Can diabetes cause kidney disease?")[0].document.key == "d2"


def test_an_abbreviation_that_is_an_everyday_word_counts_only_in_capitals() -> None:
    leukaemia = doc("all", "Acute lymphoblastic leukemia", "A cancer of white blood cells.", synonyms=("ALL",))
    index = KnowledgeIndex([leukaemia, doc("x", "Gout", "Gout is arthritis from uric acid crystals.")])
    assert index.search("How is ALL treated?")[0].document.key == "all"
    assert index.search("is it all in my head?") == []


def test_an_abbreviation_typed_in_lower_case_is_found_unless_the_sources_write_it_as_a_word() -> None:
    index = index_of_many(
        doc(
            "a", "Attention deficit-hyperactivity disorder", "Children with ADHD find it hard to focus.", "information"
        ),
        doc("t", "Tuberculosis", "Tuberculosis (TB) spreads through the air.", "information", synonyms=("TB",)),
        doc("s", "Systemic lupus erythematosus", "SLE is a disease of the immune system.", synonyms=("SLE",)),
        doc("p", "Patellar dislocation", "The kneecap slips out of place; as a rule it goes back.", synonyms=("AS",)),
        doc("m", "Mucopolysaccharidosis type IVA", "A rare disorder of sugar chains.", synonyms=("IVA",)),
        doc("e", "Exstrophy-epispadias complex", "A birth defect of the bladder.", synonyms=("EEC",)),
        doc("l", "Acute lung injury", "Sudden damage to the lungs.", synonyms=("ALI",)),
        doc("x", "Proteus syndrome", "Overgrowth of bones and skin.", synonyms=("PS",)),
        doc("pd", "Parkinson disease", "PD affects movement.", synonyms=("PD",)),
        doc("pr", "Prolidase deficiency", "A rare enzyme disorder (PD).", synonyms=("PD",)),
        doc("o", "Ocular albinism", "The eyes have less colour.", synonyms=("OA",)),
        doc("d", "Deep vein thrombosis", "A DVT is a clot in a deep vein.", "information"),
        doc("n", "Nance-Horan syndrome", "NHS affects the eyes and teeth.", "information"),
    )
    assert index.search("my doctor says my son has adhd, what does that mean")[0].document.key == "a"
    assert index.search("is tuberculosis (tb) contagious?")[0].document.key == "t"
    # Two or three letters are often a name or shorthand ("my friend ali", "ps i also have a rash"):
    # only in brackets after the name, or when they are all the question names.
    assert index.search("is tb contagious?")[0].document.key == "t"
    assert index.search("ps i also have a rash on my arm") == []
    assert index.search("my friend ali has tb") == []
    # Alone, only when something is asked, and only letters that stand for one topic whose own
    # passages use them: "PD" is two things, and the ocular albinism passage never writes "OA".
    assert index.search("ps?") == []
    assert index.search("what is pd") == []
    assert index.search("what is oa") == []
    # Three initials the passages use for their own topic, when they are all a question names;
    # not the everyday ones ("NHS" is the health service to most people).
    assert index.search("what is a dvt?")[0].document.key == "d"
    assert index.search("my dvt hurts, ps what is it") == []
    assert index.search("what is nhs?") == []
    assert index.search("what is dvt syndrome?") == []
    assert index.search("What exactly is systemic lupus erythematosus (sle)?")[0].document.key == "s"
    assert index.search("my friend ali asked me about it") == []
    # The sources write "as" as a word; "type iva" is a type, not IVA.
    assert index.search("is it as bad as they say") == []
    assert [hit.document.key for hit in index.search("what is iva")] == []
    # In a longer name it may be another thing the same letters stand for (EEC syndrome is not this EEC).
    assert index.search("what is (eec)")[0].document.key == "e"
    assert index.search("what is (eec) syndrome") == []


def test_how_a_question_asks_is_not_read_as_part_of_the_name() -> None:
    index = index_of_many(
        doc("o", "Osteoarthritis", "Osteoarthritis wears down the cartilage in joints.", "causes"),
        doc("a", "Alagille syndrome", "Alagille syndrome can lead to liver damage.", "information"),
        doc("g", "Gum disease", "Gum disease starts with plaque along the gum line.", "information"),
        doc("l", "Lead poisoning", "Lead from old paint harms the brain.", "information"),
        doc("p", "Periodontal abscess", "A pocket of pus beside a tooth.", "information"),
    )
    # "behind" and "lead to" ask; they do not make a longer name ("lead poisoning" is one).
    assert index.search("What is behind osteoarthritis, what causes it?")[0].document.key == "o"
    assert index.search("What complications can alagille syndrome lead to?")[0].document.key == "a"
    # Another name in brackets inside the name: the name without it is the topic.
    assert index.search("tell me about gum (periodontal) disease")[0].document.key == "g"
    assert question_type("What lowers the risk of gout?") == "prevention"
    assert question_type("what exactly is gout?") == "information"
    assert question_type("what's behind my gout?") == "causes"


def test_a_word_of_the_name_does_not_say_what_is_asked() -> None:
    name = "Hereditary hemorrhagic telangiectasia"
    treated = doc("t", name, "Nosebleeds are treated with laser therapy.", "treatment")
    inherited = doc("i", name, "It is inherited in an autosomal dominant pattern.", "inheritance")
    index = index_of_many(inherited, treated)
    asked = "How do doctors treat hereditary hemorrhagic telangiectasia?"
    assert asked_as(asked, spoken_names(treated)) == ("treatment", "treat")
    assert index.search(asked)[0].document.key == "t"
    assert index.search("is hereditary hemorrhagic telangiectasia hereditary?")[0].document.key == "i"


def test_the_name_shortened_in_brackets_or_the_people_who_have_it_do_not_make_another_name() -> None:
    index = index_of_many(
        doc("als", "Amyotrophic lateral sclerosis", "ALS damages motor nerves.", "information"),
        doc("other", "Acute liver syndrome", "A rare illness of the liver.", "information", ("ALS",)),
        doc("fd", "Familial dysautonomia", "Treatment eases the symptoms.", "treatment"),
        doc("pp", "Patient portals", "Web pages where patients read their records.", "information"),
    )
    assert index.search("what is amyotrophic lateral sclerosis (als)?")[0].document.key == "als"
    assert index.search("how are familial dysautonomia patients treated?")[0].document.key == "fd"


def test_another_kind_of_the_named_thing_does_not_answer() -> None:
    index = index_of_many(
        # Each also listed by the general name, as the sources' synonym lists do.
        doc(
            "dr",
            "Dyskeratosis congenita autosomal recessive",
            "A recessive form.",
            "symptoms",
            ("Dyskeratosis congenita",),
        ),
        doc(
            "m1",
            "Mucopolysaccharidosis type I",
            "MPS I stores sugars in cells.",
            "information",
            ("Mucopolysaccharidosis",),
        ),
        doc(
            "h4",
            "Hemochromatosis type 4",
            "Iron builds up.",
            "information",
            ("Hemochromatosis", "hereditary hemochromatosis type 4"),
        ),
        doc(
            "s17",
            "Spastic paraplegia 17",
            "Weak, stiff legs and small hand muscles.",
            "information",
            ("Silver syndrome",),
        ),
        doc("ml4", "Mucolipidosis type 4", "It affects the eyes and movement.", "information", ("mucolipidosis IV",)),
    )
    # The opposite kind, a numbered kind the question does not name, another Roman type.
    assert index.search("symptoms of dyskeratosis congenita autosomal dominant?") == []
    assert index.search("what is hereditary hemochromatosis?") == []
    assert index.search("what is mucopolysaccharidosis type iiib?") == []
    # A numbered kind named by one of its own names, or by its type in Roman numerals, answers.
    assert index.search("what is silver syndrome?")[0].document.key == "s17"
    assert index.search("what is mucolipidosis type IV?")[0].document.key == "ml4"


def test_a_question_with_words_of_its_own_is_not_a_follow_up() -> None:
    # Every word known and common, no topic named: only a question pointing back is a follow-up.
    index = KnowledgeIndex(
        [
            doc(f"d{i}", f"Topic {i}", f"How do I stop my father falling at home, case {i}; it is treated.")
            for i in range(300)
        ]
    )
    assert not index.names_nothing("how do i stop my father falling at home?")
    assert index.names_nothing("and how is it treated?")
    assert index.names_nothing("what about my father?")


def test_a_long_name_is_found_whole() -> None:
    name = "Inclusion body myopathy with early-onset Paget disease and frontotemporal dementia"
    index = index_of_many(
        doc("ibm", name, "A rare disorder of muscles, bones and the brain.", "information"),
        doc("ftd", "Frontotemporal dementia", "Frontotemporal dementia changes behaviour and speech.", "information"),
    )
    assert index.search(f"How rare is {name.lower()}?")[0].document.key == "ibm"


def test_nothing_matches_a_topic_the_knowledge_base_does_not_cover(curated_data, knowledge_base):
    assert retriever.search("What are the treatments for Zollinger-Ellison syndrome?") == []
    assert retriever.search("what is the capital of France") == []


def test_the_index_is_rebuilt_when_a_passage_is_added(curated_data, knowledge_base):
    from knowledge.models import Passage

    assert retriever.search("What is sarcoidosis?") == []
    Passage.objects.create(
        source=knowledge_base,
        external_id="sarc-1",
        title="What is sarcoidosis?",
        focus="Sarcoidosis",
        question_type="information",
        text="Sarcoidosis is an illness in which small clumps of inflammatory cells grow in organs.",
    )
    assert retriever.search("What is sarcoidosis?")[0].document.focus == "Sarcoidosis"


def index_of_many(*documents: Document, filler: int = 200) -> KnowledgeIndex:
    """Real documents plus enough unrelated ones that word rarity means something (as with an
    imported source: the rules for rare words only apply past 200 passages)."""
    padding = [
        doc(f"pad{i}", f"Topic number {i}", f"Everyday words about topic {i} for padding.") for i in range(filler)
    ]
    return KnowledgeIndex([*documents, *padding])


def test_a_longer_name_around_a_known_one_is_not_answered_by_the_shorter_one() -> None:
    index = index_of_many(
        doc("h", "Hydrocephalus", "Hydrocephalus is fluid building up in the brain.", "information"),
        doc("als", "Amyotrophic lateral sclerosis", "ALS damages the nerves that move muscles.", "information"),
        doc("j", "Juvenile arthritis", "Juvenile arthritis starts before the age of sixteen.", "information"),
        doc("p", "Pressure sores", "Pressure sores are skin damage from lying still.", "information"),
    )
    assert index.search("What is hydrocephalus?")[0].document.key == "h"
    assert index.search("What is normal pressure hydrocephalus?") == []  # "pressure" names things here
    assert index.search("What is juvenile amyotrophic lateral sclerosis?") == []


def test_a_lettered_type_or_an_unknown_word_after_with_makes_another_name() -> None:
    index = index_of_many(
        doc(
            "t2",
            "Type 2 diabetes",
            "Type 2 diabetes starts with insulin resistance.",
            "information",
            ("insulin resistance",),
        ),
        doc("d", "Dementia", "Dementia is a loss of memory and thinking that gets worse.", "information"),
        doc("g", "Gorlin syndrome", "Gorlin syndrome causes many basal cell skin growths.", "information"),
    )
    assert index.search("What is insulin resistance?")[0].document.key == "t2"
    assert index.search("What is type A insulin resistance syndrome?") == []  # "type A" names a kind
    assert index.search("What is dementia with vorbeck bodies?") == []  # an unknown word after "with"
    assert index.search("What helps dementia with memory problems?")[0].document.key == "d"  # a known one


def test_a_word_the_knowledge_base_never_saw_makes_a_name_it_does_not_know() -> None:
    index = index_of_many(
        doc("g", "Gorlin syndrome", "Gorlin syndrome causes many basal cell skin growths.", "information"),
        doc("h", "Headache", "Most headaches are from tension or dehydration.", "information"),
        doc("r", "Roundworm infection", "Roundworm infection comes from swallowing eggs in soil.", "information"),
    )
    assert index.search("What is Gorlin syndrome?")[0].document.key == "g"
    assert index.search("What is Meier-Gorlin syndrome?") == []  # "meier" is unknown here
    assert index.search("How is SUNCT headache treated?") == []
    # A condition-shaped word no passage has ever used: nothing here answers it.
    assert index.search("How do people catch trichuriasis, a roundworm infection?") == []
    assert index.search("How do people catch a roundworm infection?")[0].document.key == "r"


def test_a_general_name_is_not_answered_by_a_passage_on_one_group_or_one_syndrome_it_names() -> None:
    index = index_of_many(
        doc("a", "Adult-onset retinal dystrophy", "It starts in middle age and blurs central vision.", "information"),
        doc("s", "Ataxia - deafness - nerve palsy", "A rare syndrome of unsteady walking and deafness.", "information"),
        doc("p", "Parasites - Taeniasis", "Taeniasis is a tapeworm infection from undercooked meat.", "information"),
    )
    assert index.search("What is retinal dystrophy?") == []  # the adult-onset form is not the general name
    assert index.search("What is adult-onset retinal dystrophy?")[0].document.key == "a"
    assert index.search("What is ataxia?") == []  # one syndrome's name, not three names for it
    assert index.search("How do people get taeniasis?")[0].document.key == "p"  # category - name still splits


def test_a_numbered_type_needs_a_passage_named_with_that_number() -> None:
    index = index_of_many(
        doc("g", "Glycogen storage disease type 5", "Type 5 affects the muscles.", "information"),
        doc(
            "m",
            "Medullary cystic kidney disease",
            "A kidney disease.",
            "information",
            ("medullary cystic kidney disease 1",),
        ),
        doc("m1", "Medullary cystic kidney disease 1", "Type 1 starts in adults.", "information"),
    )
    assert index.search("What is glycogen storage disease type 13?") == []
    # The passage named for type 1 first; the general one lists "type 1" among its names too.
    assert index.search("What is medullary cystic kidney disease type 1?")[0].document.key == "m1"


def test_the_people_a_topic_is_about_must_match() -> None:
    index = index_of_many(
        doc("c", "Childhood leukemia", "Leukemia in children is often treatable.", "information"),
        doc("u", "Urinary tract infections", "Bacteria in the bladder cause most of them.", "information"),
    )
    assert index.search("What is adult leukemia?") == []
    assert index.search("What are urinary tract infections in children?") == []
    assert index.search("What are urinary tract infections?")[0].document.key == "u"


def test_non_hodgkin_is_not_hodgkin() -> None:
    index = index_of_many(doc("h", "Hodgkin lymphoma", "A cancer of lymph cells with Reed-Sternberg cells."))
    assert index.search("what is non-hodgkin lymphoma?") == []


def test_rare_everyday_words_in_a_question_are_not_required_in_the_passage() -> None:
    index = index_of_many(
        doc("m", "Marfan syndrome", "Marfan syndrome affects connective tissue.", "information"),
        doc("w", "Warfarin", "Warfarin thins the blood; exactly as prescribed, behind a label."),
    )
    assert index.search("What exactly is behind Marfan syndrome?")[0].document.key == "m"


def test_a_topic_asked_about_animals_is_not_answered_from_a_passage_about_people() -> None:
    index = index_of_many(doc("l", "Head lice", "Head lice are small insects that live in human hair.", "symptoms"))
    assert index.search("What are the symptoms of head lice?")[0].document.key == "l"
    assert index.search("What are the symptoms of head lice in dogs?") == []
    assert index.search("How do I treat head lice in a newborn?") == []


def test_a_letter_or_a_hyphen_joined_word_makes_another_name() -> None:
    index = index_of_many(
        doc("f", "Fever in adults", "A temperature of 38 C or more is a fever.", synonyms=("fever",)),
        doc("t", "Taybi syndrome", "Taybi syndrome affects the bones of the face and fingers.", "information"),
        doc("n", "Niemann-Pick disease", "A group of inherited fat storage disorders.", "information"),
        doc("h", "Hypophosphatemia", "Low phosphate in the blood weakens bones.", "information"),
    )
    assert index.search("I have a fever, what should I do?")[0].document.key == "f"
    assert index.search("Which symptoms does Q fever cause?") == []  # Q fever is an infection, not any fever
    assert index.search("What is Taybi syndrome?")[0].document.key == "t"
    assert index.search("How common is Rubinstein-Taybi syndrome?") == []
    assert index.search("What is Niemann-Pick disease type A?") == []
    assert index.search("What is X-linked hypophosphatemia?") == []
    assert index.search("What is hypophosphatemia?")[0].document.key == "h"


def test_a_name_narrowed_by_what_follows_it_is_not_the_general_one() -> None:
    index = index_of_many(
        doc("a", "Anemia", "Anemia means too few red blood cells.", "information"),
        doc("d", "Dysautonomia", "Dysautonomia is a fault of the nerves that run automatic functions.", "information"),
        doc("i", "Inflammation", "Inflammation is the body's response to injury."),
    )
    assert index.search("What is anemia?")[0].document.key == "a"
    assert index.search("Tell me about anemia of inflammation") == []
    assert index.search("What are the warning signs of dysautonomia like disorder?") == []


def test_a_partial_name_match_needs_the_same_side_and_no_word_inside_the_name() -> None:
    index = index_of_many(
        doc("r", "Hypoplastic right heart syndrome", "The right side of the heart is underdeveloped.", "information"),
        doc("g", "Gorlin syndrome", "Gorlin syndrome causes many basal cell skin growths.", "information"),
        doc("m", "Marden Walker like syndrome", "A condition resembling Marden-Walker syndrome.", "information"),
        doc("w", "Walking", "Walking for half an hour a day helps the heart."),
    )
    assert index.search("Can you explain what hypoplastic right heart syndrome is?")[0].document.key == "r"
    assert index.search("Can you explain what hypoplastic left heart syndrome is?") == []
    assert index.search("Which symptoms does gorlin chaudhry moss syndrome cause?") == []
    assert index.search("Which symptoms does gorlin walking syndrome cause?") == []  # a known word inside, too
    assert index.search("What can be done for marden walker syndrome?") == []


def test_a_rare_word_in_front_of_a_name_narrows_it_but_asking_words_do_not() -> None:
    # 1,000 passages, so "basilar" (in one of them) is rare while "triggers" is how people ask.
    index = index_of_many(
        doc("m", "Migraine", "Migraine is a throbbing headache, often with sickness.", "information"),
        doc("b", "Skull anatomy", "The basilar part of the skull sits at its base."),
        doc("a", "Asthma", "Cold air, smoke and pollen can set off asthma.", "causes"),
        doc("t", "Trigger finger", "A finger that catches when bent."),
        filler=1000,
    )
    assert index.search("Is there a cure for migraine?")[0].document.key == "m"
    assert index.search("Is there a cure for basilar migraine?") == []
    assert index.search("What triggers asthma?")[0].document.key == "a"
    assert index.search("Is there anything special to know about living with asthma?")[0].document.key == "a"


def test_a_linking_word_after_a_name_does_not_make_it_a_longer_name() -> None:
    index = index_of_many(
        doc(
            "b",
            "High blood pressure",
            "Less salt, more activity and less alcohol lower blood pressure.",
            "treatment",
            ("blood pressure",),
        ),
        doc("d", "Ectodermal dysplasia without hair loss", "A rare condition of the sweat glands.", "information"),
    )
    # "without" is a word of some long names, but here it only joins the question's parts.
    assert index.search("How can I lower my blood pressure without medicine?")[0].document.key == "b"


def test_everyday_phrasings_find_their_curated_entries(curated_data, knowledge_base):
    # Words around the topic that are ordinary English here, though some long names use them
    # ("white matter", "small cell", "without"): they neither narrow the topic nor must be quoted.
    asked = {
        "How can I lower my blood pressure without medicine?": "High blood pressure",
        "How much sleep does an adult need, and why does it matter?": "Sleep problems and insomnia",
        "How do I look after a small burn at home?": "Minor burns and scalds",
        "How can I tell if a sprained ankle needs an X-ray?": "Sprains and strains",
        "What are good ways to manage everyday stress?": "Stress",
    }
    for question, title in asked.items():
        hits = retriever.search(question)
        assert hits and hits[0].document.title == title, question


def test_a_name_written_in_another_word_order_is_the_same_name() -> None:
    index = index_of_many(
        doc("p", "Polyglucosan body disease, adult", "A disorder of the nervous system in later life.", "information"),
        doc("h", "Familial progressive heart block", "A conduction fault that worsens over time.", "information"),
        doc("b", "Heart block", "The heart's electrical signal is slowed or stopped.", "information"),
    )
    assert index.search("What does adult polyglucosan body disease feel like?")[0].document.key == "p"
    assert index.search("Is there a cure for progressive familial heart block?")[0].document.key == "h"


def test_a_leaflet_answers_its_topic_but_not_another_leaflets_subtitle() -> None:
    index = index_of_many(
        doc("e", "Kidney failure: eating well on dialysis", "Limit salt, potassium and fluids on dialysis."),
        doc("w", "Kidney failure: what to expect", "Itching and tiredness are common as the kidneys fail."),
        doc("s", "Second opinions", "Choosing between treatments is easier with a second opinion."),
    )
    assert {hit.document.key for hit in index.search("What should I know about kidney failure?")} == {"e", "w"}
    assert index.search("Tell me about kidney failure: eating well on dialysis")[0].document.key == "e"
    assert index.search("Tell me about kidney failure: choosing a treatment") == []


def test_a_lettered_or_roman_type_needs_the_same_type() -> None:
    index = index_of_many(doc("v", "Glycogen storage disease type V", "Type V affects the muscles.", "information"))
    assert index.search("What is glycogen storage disease type V?")[0].document.key == "v"
    assert index.search("What is glycogen storage disease type I?") == []


def test_a_name_repeated_many_times_is_not_one_long_name() -> None:
    # Each word in front of a name could narrow it; a question of one name repeated hundreds of
    # times made a qualifier per word, checked against every passage (seconds per search).
    index = index_of_many(doc("p", "Parasites", "Parasites live on or in a host.", "information"))
    words = ["parasite"] * 300
    assert len(index.qualifiers(words, 299, 300)) <= MAX_QUALIFIERS
    assert index.search("parasites " * 200)[0].document.key == "p"


def test_abbreviations_come_from_a_passages_own_name_not_its_synonym_list() -> None:
    index = index_of_many(
        doc("s", "Spondylothoracic dysostosis", "A rare disorder of the spine and ribs.", "information", ("STD",)),
        doc("a", "Amyotrophic lateral sclerosis (ALS)", "ALS damages the nerves that move muscles.", "information"),
        doc("f", "Stroke warning signs (FAST)", "Face drooping, arm weakness, speech: call now.", "information"),
        *[doc(f"fast{i}", f"Fasting {i}", "Do not eat before the test; fast from midnight.") for i in range(4)],
    )
    assert index.search("What is an STD?") == []  # the everyday abbreviation is not this rare disease
    assert index.search("What is ALS?")[0].document.key == "a"
    assert index.search("What are the FAST signs?")[0].document.key == "f"
    assert all(hit.document.key != "f" for hit in index.search("Should I fast before a blood test?"))


def test_word_order_matching_stays_inside_the_name() -> None:
    index = index_of_many(
        doc("g", "Glaucoma", "Glaucoma damages the optic nerve.", "information"),
        doc("e", "Early-onset glaucoma", "A rare inherited form.", "information", ("hereditary glaucoma",)),
        doc("h", "Hemophilia", "Blood does not clot normally.", "information"),
        doc("q", "Acquired hemophilia", "An autoimmune form in older adults.", "information"),
        doc("c", "Gallbladder cancer", "A rare cancer of the gallbladder.", "information"),
    )
    assert index.search("Is glaucoma hereditary?")[0].document.key == "g"
    assert index.search("My son has hemophilia, was it acquired?")[0].document.key == "h"
    assert index.search("What is a gallbladder attack?") == []  # not the cancer passage


def curated(key: str, title: str, text: str, triggers: tuple[str, ...]) -> Document:
    """A curated entry as the index holds it: found by its lay trigger phrases."""
    return Document(key=f"rule:{key}", title=title, focus=title, text=text, synonyms=triggers)


def test_a_rare_word_next_to_a_curated_entrys_lay_word_names_another_thing() -> None:
    index = index_of_many(
        curated(
            "1", "Heartburn and acid reflux", "Acid coming back up the gullet burns behind the breastbone.", ("reflux",)
        ),
        curated(
            "2", "Dementia warning signs", "Memory loss that disrupts daily life is worth a check.", ("alzheimer",)
        ),
        doc(
            "k",
            "Kidney infection",
            "Urine flowing back up, vesicoureteral reflux, can infect the kidneys.",
            "information",
        ),
        doc("c", "Caregivers", "Caregiving for a relative with dementia is hard work.", "information"),
    )
    assert index.search("What helps reflux?")[0].document.key == "rule:1"
    assert index.search("What does it mean to have vesicoureteral reflux?") == []
    assert index.search("What are the first signs of Alzheimer's?")[0].document.key == "rule:2"
    assert index.search("What tests check for Alzheimer's caregiving?") == []


def test_a_name_that_qualifies_another_is_not_asked_about_on_its_own() -> None:
    index = index_of_many(
        doc("k", "Kidney disease", "Kidney disease means the kidneys filter less blood.", "exams and tests"),
        doc("d", "Diabetes", "Diabetes raises blood sugar; over years it can harm the kidneys.", "exams and tests"),
    )
    assert index.search("How is diabetes diagnosed?")[0].document.key == "d"
    # "Kidney disease of diabetes" is one thing, which neither passage is about.
    assert index.search("How is kidney disease of diabetes diagnosed?") == []


def test_an_x_linked_kind_does_not_answer_the_general_name() -> None:
    # "X-linked" is common in a real corpus: ten other X-linked kinds make it so here.
    others = [doc(f"o{i}", f"Other disorder {i}", f"An X-linked disorder, number {i}.") for i in range(10)]
    index = index_of_many(
        doc("x", "Split hand/foot malformation X-linked", "A rare X-linked form of split hand foot.", "information"),
        *others,
    )
    assert index.search("What is X-linked split hand foot malformation?")[0].document.key == "x"
    assert index.search("What is split hand foot malformation?") == []


def test_a_word_in_brackets_still_narrows_the_name() -> None:
    index = index_of_many(
        curated("1", "Heartburn and acid reflux", "Acid coming back up burns behind the breastbone.", ("reflux",)),
        doc(
            "k", "Kidney infection", "Urine flowing back up, vesicoureteral reflux, can infect kidneys.", "information"
        ),
        doc("a", "Arthritis", "Arthritis is pain and swelling in the joints.", "information"),
    )
    assert index.search("What is reflux (vesicoureteral)?") == []
    assert index.search("What is (juvenile) arthritis?") == []
    assert index.search("What is arthritis?")[0].document.key == "a"


def test_a_cancer_or_a_syndrome_named_after_a_curated_entrys_lay_word_is_another_thing() -> None:
    index = index_of_many(
        curated("1", "Underactive thyroid", "A slow thyroid makes you tired and cold.", ("thyroid",)),
        curated("2", "Sinusitis", "Blocked sinuses cause pressure in the face.", ("sinus",)),
        doc("m", "Melanoma", "Melanoma is a cancer of the cells that colour the skin.", "information"),
    )
    assert index.search("What are the signs of thyroid problems?")[0].document.key == "rule:1"
    assert index.search("What are the signs of thyroid cancer?") == []
    assert index.search("Is melanoma cancer?")[0].document.key == "m"  # a reviewed source's name: a question
    assert index.search("Why does my sinus hurt?")[0].document.key == "rule:2"
    assert index.search("What is sick sinus syndrome?") == []
    # "syndrome" makes another thing only behind a word the entry does not name: asked plainly, the
    # entry's own topic ("vasovagal syndrome" is the fainting entry's "vasovagal").
    assert index.search("Is a sinus syndrome serious?")[0].document.key == "rule:2"
    # A serious kind asked about the entry's thing, not part of a name: "is my X cancer?", "X cancer risk".
    assert index.search("Is my thyroid cancer?")[0].document.key == "rule:1"
    assert index.search("thyroid cancer risk")[0].document.key == "rule:1"
    assert index.search("Could it be thyroid cancer?") == []


def test_another_topic_joined_by_and_must_be_spoken_of_by_the_passage() -> None:
    # The knowledge split: "smoking and the digestive system" got the quitting entry, "prescription and
    # illicit drug abuse" the entry on taking medicines safely.
    index = index_of_many(
        curated("1", "Quitting smoking", "Stopping smoking protects your heart and lungs.", ("smoking",)),
        curated("2", "Type 2 diabetes", "Prediabetes means blood sugar above normal.", ("diabetes", "prediabetes")),
        curated("3", "Headache", "Most headaches ease with rest and fluids.", ("headache",)),
        doc("d", "Diarrhea", "Diarrhea is loose stools. Digestive system upsets cause it.", "information"),
    )
    assert index.search("what is smoking and the digestive system?") == []
    assert index.search("smoking and your lungs and heart")[0].document.key == "rule:1"  # it speaks of both
    assert index.search("the digestive system and diarrhea")[0].document.key == "d"
    # Two names of one entry, and one word said with a topic (more often a symptom than a topic), answer.
    assert index.search("tell me about diabetes and prediabetes")[0].document.key == "rule:2"
    assert index.search("headache and nausea")[0].document.key == "rule:3"


def test_words_joined_by_with_that_the_passage_never_uses_make_another_topic() -> None:
    # The knowledge split: "epidermolysis bullosa with pyloric atresia" got the general passage, and
    # "myopathy with deficiency of iron-sulfur cluster assembly enzyme" the one on myopathy.
    index = index_of_many(
        doc("eb", "Epidermolysis bullosa", "The skin blisters. Rarely the pyloric outlet is shut.", "information"),
        doc("m", "Myopathy", "A myopathy is a disease of the muscles.", "information"),
        doc("c", "COPD", "COPD makes breathing hard. Emphysema is one form of it.", "information"),
    )
    assert index.search("what is epidermolysis bullosa with pyloric atresia?") == []
    assert index.search("what is myopathy with deficiency of iron-sulfur cluster assembly enzyme?") == []
    assert index.search("what is epidermolysis bullosa?")[0].document.key == "eb"
    assert index.search("copd with emphysema")[0].document.key == "c"  # the passage speaks of it
    assert index.search("copd with a bad cough and fever")[0].document.key == "c"  # another name: its own check


@pytest.mark.parametrize(
    ("question", "ages"),
    [
        ("my son is 6 and has a fever", {"6": True}),
        ("my 3yo has a rash", {"3": True}),
        ("a 3-year-old with a cough", {"3": True}),
        ("my 8 week old baby", {"8": True}),
        ("she is 14 months", {"14": True}),
        ("he is 80 and keeps falling", {"80": False}),
        ("aged 70", {"70": False}),
        # Not ages: how long, a pregnancy, a test result, a weight, a temperature.
        ("I have had a cough for 3 years", {}),
        ("a fever for 3 days", {}),
        ("she is 8 weeks pregnant", {}),
        ("my hba1c is 7", {}),
        ("my son is 20kg", {}),
        ("she is 38c", {}),
    ],
)
def test_ages_are_read_with_whether_they_are_a_childs(question, ages) -> None:
    assert ages_in(question) == ages


def test_a_childs_age_takes_the_entry_written_for_children_and_is_not_a_type_number() -> None:
    # "my son is 6 and has a fever" had no answer: "6" was read as a type number that the adult entry's
    # trigger "38 degrees" did not have. Said with "of 38", it got the adult entry.
    index = index_of_many(
        curated("1", "Fever in adults", "Rest and drink fluids.", ("fever", "temperature", "38 degrees")),
        curated("2", "Fever in children", "Most fevers in children are mild.", ("child fever", "toddler temperature")),
        curated("3", "Type 2 diabetes", "Blood sugar stays too high.", ("diabetes",)),
        curated("4", "Type 1 diabetes", "The body makes no insulin.", ("diabetes",)),
    )
    for question in (
        "my son is 6 and has a fever",
        "my son is 6 and has a fever of 38",
        "my 3yo has a temperature",
        "my 8 week old has a fever",
    ):
        assert [hit.document.key for hit in index.search(question)][:1] == ["rule:2"], question
    assert index.search("my dad is 80 and has a fever")[0].document.key == "rule:1"
    assert index.search("what is a fever?")[0].document.key == "rule:1"
    # Weeks of a pregnancy are not a baby's age.
    assert "rule:2" not in [hit.document.key for hit in index.search("I am 30 weeks pregnant and have a fever")]
    assert index.search("what is type 2 diabetes?")[0].document.key == "rule:3"  # a title's number is a type


def test_a_medicine_the_sources_never_name_is_not_answered_by_the_condition_it_is_taken_for() -> None:
    # The attack review: "can i take zorbitrexal for my asthma" got the asthma entry.
    index = index_of_many(curated("1", "Asthma", "An inhaler eases the airways.", ("asthma",)))
    assert index.search("can i take zorbitrexal for my asthma") == []
    assert index.search("i was prescribed zorbitrexal, is it good for asthma?") == []
    assert index.search("can i take my inhaler more often for asthma")[0].document.key == "rule:1"


def test_a_non_name_does_not_answer_the_name_it_negates_either_way_round() -> None:
    # The knowledge split: "childhood hodgkin lymphoma" got the passage on childhood non-Hodgkin lymphoma.
    lymphoma = doc("n", "Childhood Non-Hodgkin Lymphoma", "Non-Hodgkin lymphoma is a lymph cancer.", "information")
    common = [doc(f"c{n}", f"Habit {n}", f"Non-smokers and non-drinkers ({n}).") for n in range(8)]  # "non" is common
    index = index_of_many(lymphoma, *common)
    assert index.search("what is childhood non-hodgkin lymphoma?")[0].document.key == "n"
    assert index.search("what is childhood hodgkin lymphoma?") == []


def test_a_hyphenated_name_is_not_answered_by_a_passage_on_one_of_its_parts() -> None:
    index = index_of_many(
        doc("g", "Gerstmann's Syndrome", "Gerstmann's syndrome follows damage to one part of the brain.", "information")
    )
    assert index.search("What is Gerstmann syndrome?")[0].document.key == "g"
    assert index.search("What is Gerstmann-Straussler-Scheinker disease?") == []


def test_adults_men_and_women_are_answered_by_the_general_passage_but_children_are_not() -> None:
    index = index_of_many(
        doc("c", "Celiac disease", "Gluten damages the small bowel in celiac disease.", "symptoms"),
        doc("k", "Kidney Stones in Adults", "Kidney stones are hard lumps formed in the kidneys.", "information"),
    )
    assert index.search("What are the symptoms of celiac disease in adults?")[0].document.key == "c"
    assert index.search("What are the symptoms of celiac disease in women?")[0].document.key == "c"
    assert index.search("What are the symptoms of celiac disease in children?") == []
    assert index.search("What are kidney stones?")[0].document.key == "k"  # a title "... in Adults" too
    # A title "... in Women" speaks to women: it does not answer the general question.
    women = index_of_many(doc("w", "Heart Disease in Women", "Women may have subtler signs.", "information"))
    assert women.search("What is heart disease?") == []


def test_a_path_that_narrows_as_it_goes_names_its_last_part() -> None:
    index = index_of_many(
        doc("l", "Parasites - Lice - Head Lice", "Head lice live on the scalp and spread by contact.", "treatment"),
        doc("a", "Ataxia - deafness - nerve palsy", "A rare syndrome of unsteady walking and deafness.", "information"),
    )
    assert index.search("My daughter has head lice again, how do I get rid of them?")[0].document.key == "l"
    assert index.search("What is nerve palsy?") == []  # one syndrome's name, not three names for it


def test_a_question_about_someones_animal_is_not_answered_from_sources_about_people() -> None:
    index = index_of_many(
        curated("1", "Diarrhoea", "Loose stools usually settle in a few days; drink plenty.", ("diarrhoea",)),
        doc("r", "Ringworm", "Ringworm is a skin fungus; it can spread from pets such as cats.", "information"),
        doc("s", "Computed tomography", "A CT or CAT scan takes X-ray pictures in slices.", "information"),
    )
    assert index.search("I have diarrhoea")[0].document.key == "rule:1"
    assert index.search("my puppy has diarrhoea") == []
    # A person who mentions their pet asks about themselves.
    assert index.search("our puppy has diarrhoea and now I have diarrhoea too")[0].document.key == "rule:1"
    assert index.search("Since walking my dog I get diarrhoea")[0].document.key == "rule:1"
    assert index.search("my cat has ringworm") == []
    assert index.search("my cat has ringworm, what should I do?") == []  # the "I" of asking
    assert index.search("Can I catch ringworm from my cat?")[0].document.key == "r"
    assert index.search("Is computed tomography, the CAT scan, safe?")[0].document.key == "s"
    # Animals in general, not someone's own: a question about people.
    assert index.search("Does having a dog cause diarrhoea?")[0].document.key == "rule:1"


def test_a_focus_prefix_many_foci_share_is_their_category_not_a_name() -> None:
    index = index_of_many(
        doc("h", "Parasites - Hookworm", "Hookworm is caught through the skin; unlike schistosomiasis it...", "causes"),
        doc("t", "Parasites - Taeniasis", "Taeniasis comes from undercooked meat.", "causes"),
        doc("c", "Parasites - Cysticercosis", "Cysticercosis follows swallowed tapeworm eggs.", "causes"),
        doc("a", "Anemia - iron deficiency", "Too little iron makes too few red cells.", "information"),
    )
    assert index.search("How do you get schistosomiasis parasites?") == []
    assert index.search("How do you get taeniasis?")[0].document.key == "t"
    assert index.search("What is anemia?")[0].document.key == "a"  # one focus with that head: still a name


def test_a_rare_word_the_passage_never_uses_next_to_a_partial_name_makes_a_longer_name() -> None:
    # "oral" is an everyday word in a real corpus: its absence from the question does not matter.
    mouth = [doc(f"m{i}", f"Mouth topic {i}", f"Oral care, part {i}.") for i in range(10)]
    index = index_of_many(
        *mouth,
        doc("o", "Oral lichen planus", "Lichen planus in the mouth forms white lacy patches.", "information"),
        doc("f", "Farber disease", "Farber disease, or Farber lipogranulomatosis, is rare.", "information"),
    )
    assert index.search("What is lichen planus?")[0].document.key == "o"
    assert index.search("What is lichen planus pigmentosus?") == []
    assert index.search("What is Farber lipogranulomatosis?")[0].document.key == "f"


def test_a_message_that_tells_of_a_diagnosis_is_typed_by_what_it_asks() -> None:
    assert question_type("My son has been diagnosed with ADHD. What treatments are available?") == "treatment"
    assert question_type("I was diagnosed with gout last week. What does that mean?") == "information"
    assert question_type("How is gout diagnosed?") == "exams and tests"
    assert question_type("How are babies diagnosed with cystic fibrosis?") == "exams and tests"
    assert question_type("how do you get hepatitis C") == "causes"
    assert question_type("How is TB spread?") == "causes"
    assert question_type("Is hemophilia passed from mother to son?") == "inheritance"
    assert question_type("Can Huntington's disease skip a generation?") == "inheritance"
    assert question_type("How long do people with ALS live?") == "outlook"
    assert question_type("my father has atrial fibrillation, is it serious?") == "information"


def test_without_a_passage_of_its_type_the_overview_answers() -> None:
    index = KnowledgeIndex(
        [
            doc("r", "Psoriasis", "Studies of psoriasis look at psoriasis genes and psoriasis treatments.", "research"),
            doc("i", "Psoriasis", "Psoriasis is a skin disease with red, scaly patches.", "information"),
            doc("c", "COPD", "Smoking causes most COPD; COPD also follows dust and fumes.", "causes"),
            doc("o", "COPD", "COPD is a lung disease that makes breathing hard.", "information"),
        ]
    )
    assert index.search("is psoriasis contagious?")[0].document.key == "i"
    assert index.search("my mom has COPD, what is the outlook for COPD")[0].document.key == "o"
    # Another passage using how the question asks ("causes") is not for that the answer.
    index = KnowledgeIndex(
        [
            doc("r", "ADHD", "Studies of ADHD look for what causes ADHD and test new ADHD medicines.", "research"),
            doc("i", "ADHD", "ADHD makes it hard to pay attention and sit still.", "information"),
        ]
    )
    assert index.search("What causes ADHD?")[0].document.key == "i"


def test_a_reviewed_passage_on_the_named_thing_beats_an_entry_that_lists_it_as_a_trigger() -> None:
    palpitations = Document(
        key="rule:1",
        title="Palpitations",
        focus="Palpitations",
        text="Palpitations: a racing heartbeat. If your father has them, a tracing may mean atrial fibrillation.",
        synonyms=("atrial fibrillation", "heart racing"),
    )
    index = KnowledgeIndex(
        [
            palpitations,
            doc("af", "Atrial fibrillation", "It is an irregular, often fast heartbeat.", "information"),
        ]
    )
    assert index.search("My father has atrial fibrillation. What does that mean?")[0].document.key == "af"
    assert index.search("why is my heart racing?")[0].document.key == "rule:1"
    eczema = Document(key="rule:2", title="Eczema", focus="Eczema", text="Moisturise; steroid creams treat flares.")
    index = KnowledgeIndex(
        [
            Document(**{**eczema.__dict__, "synonyms": ("atopic dermatitis",)}),
            doc("ad", "Atopic dermatitis", "Atopic dermatitis is a skin condition that itches.", "information"),
        ]
    )
    assert index.search("What is atopic dermatitis?")[0].document.key == "ad"
    # No passage on atopic dermatitis speaks of treatment: the entry that does still answers.
    assert index.search("How is atopic dermatitis treated?")[0].document.key == "rule:2"


def test_a_type_number_and_a_usual_adverb_do_not_hide_the_name() -> None:
    index = index_of_many(
        doc("g", "Your guide to diabetes: type 1 and type 2", "Both types raise blood sugar.", "information"),
        doc("d", "Diabetes", "Diabetes means high blood sugar.", "information"),
        doc("m", "Menopause", "Menopause is when periods stop, usually around the age of fifty.", "information"),
        doc("u", "Usually harmless cysts", "A made-up name that puts usually among the names.", "information"),
        doc("x", "Growth charts", "The difference between two children's heights.", "information"),
    )
    assert index.search("what is the difference between type 1 and type 2 diabetes?")[0].document.key == "g"
    assert index.search("at what age does menopause usually start?")[0].document.key == "m"


def test_chronic_in_front_of_a_name_is_answered_by_a_passage_that_speaks_of_the_chronic_form() -> None:
    index = index_of_many(
        doc("k", "Kidney disease", "Chronic kidney disease means the kidneys slowly filter less.", "information"),
        doc("p", "Pancreatitis", "Pancreatitis is inflammation of the pancreas after gallstones.", "information"),
        doc("c", "Chronic cough", "A made-up name that puts chronic among the names.", "information"),
    )
    assert index.search("What is chronic kidney disease?")[0].document.key == "k"
    assert index.search("What are the stages of chronic kidney disease?")[0].document.key == "k"
    assert index.search("What is nutrition for advanced chronic kidney disease?") == []
    assert index.search("What is bone disorder in chronic kidney disease?") == []
    assert index.search("What is chronic pancreatitis?") == []  # that passage never speaks of it


def test_a_passage_that_calls_its_topic_by_its_initials_is_found_by_them() -> None:
    index = index_of_many(
        doc("a", "Attention deficit-hyperactivity disorder", "Children with ADHD find it hard to focus.", "treatment"),
        doc("w", "Wiskott-Aldrich syndrome", "An immune disorder.", "information", synonyms=("WAS",)),
        doc("m", "Age-related macular degeneration", "Sight loss; ARM is one name for it.", synonyms=("ARM",)),
        Document(key="rule:1", title="Sprains", focus="Sprains", text="A sprained arm or ankle hurts and swells."),
        doc("r", "Renal tubular acidosis", "In RTA the kidneys leave too much acid in the blood.", "information"),
    )
    assert index.search("My son has ADHD. What treatments are there?")[0].document.key == "a"
    # A message in capitals: its everyday words are not abbreviations.
    assert index.search("MY SON WAS HURT IN THE ARM") == []
    assert index.search("What is ARM?")[0].document.key == "m"  # written so among small letters
    # Three initials mean other things to too many people ("I was in an RTA": a road accident).
    assert index.search("I was in an RTA last week and my neck hurts") == []


def test_a_second_topic_named_by_its_abbreviation_is_found_under_its_full_name() -> None:
    index = index_of_many(
        doc("d", "Diabetes", "Over years diabetes can damage the kidneys: chronic kidney disease.", "complications"),
        doc("k", "Chronic kidney disease", "The kidneys slowly filter less blood.", "information", ("CKD",)),
    )
    assert index.search("Can diabetes cause CKD?")[0].document.key == "d"


def test_without_a_passage_of_its_type_the_one_using_the_questions_words_answers() -> None:
    index = KnowledgeIndex(
        [
            doc(
                "i",
                "Tuberculosis",
                "A laboratory branch tests tuberculosis cultures for health departments.",
                "information",
            ),
            doc("t", "Tuberculosis", "Tuberculosis is spread through the air; treatment takes months.", "treatment"),
        ]
    )
    assert index.search("How is tuberculosis spread?")[0].document.key == "t"


def test_a_passage_that_only_lists_other_pages_never_answers() -> None:
    eczema = Document(key="rule:1", title="Eczema", focus="Eczema", text="Moisturise; steroid creams treat flares.")
    index = KnowledgeIndex(
        [
            Document(**{**eczema.__dict__, "synonyms": ("atopic dermatitis",)}),
            doc("ad", "Atopic dermatitis", "Atopic dermatitis is a skin condition that itches.", "information"),
            doc(
                "r",
                "Atopic dermatitis",
                "These resources address the management of atopic dermatitis: - A - B",
                "treatment",
            ),
        ]
    )
    assert index.search("How is atopic dermatitis treated?")[0].document.key == "rule:1"
    assert all(hit.document.key != "r" for hit in index.search("atopic dermatitis resources management"))


def test_misspelt_asking_words_are_put_right_but_names_are_not() -> None:
    index = index_of_many(
        doc("s", "Asthma", "Wheezing and a tight chest are signs of asthma.", "symptoms"),
        doc("t", "Asthma", "Inhalers treat asthma.", "treatment"),
    )
    assert index.respelled("wat r the simptoms of asthma") == "wat r the symptoms of asthma"
    assert index.search("What are the symtoms of asthma?")[0].document.key == "s"
    assert index.search("how is asthma tretted")[0].document.key == "t"
    # Names and short words stay as written: an unknown name must stay unknown.
    assert index.respelled("is trichuriasis contagous") == "is trichuriasis contagious"
    assert index.respelled("can dogs get asthma") == "can dogs get asthma"


def test_a_misspelt_word_of_a_name_is_put_right_next_to_the_rest_of_the_name() -> None:
    # The fresh eye got "no reliable answer" for "symptoms of high blood presure".
    index = index_of_many(
        doc("b", "High blood pressure", "High blood pressure rarely causes symptoms.", "symptoms"),
        doc("g", "Gaucher disease", "Gaucher disease is rare.", "information"),
    )
    assert index.respelled("symptoms of high blood presure") == "symptoms of high blood pressure"
    assert index.search("what are the symptoms of high blood presure?")[0].document.key == "b"
    # Alone, or next to words that are not its name's, a near miss stays an unknown name.
    assert index.respelled("what is presure sickness") == "what is presure sickness"
    assert index.respelled("what is gowcher disease") == "what is gowcher disease"  # two letters from "gaucher"
    assert not index.search("what is gowcher disease")
    assert index.search("what is goucher disease")[0].document.key == "g"  # one
    # A first letter is kept: "a" in front can make another condition (amyotonia is not myotonia).
    assert index.respelled("what is aaucher disease") == "what is aaucher disease"
    # A five-letter word of a name is one letter from too many: "tietze syndrome" is not Tietz syndrome.
    short = index_of_many(doc("t", "Tietz syndrome", "Tietz syndrome affects hearing and pigment.", "information"))
    assert short.respelled("what is tietze syndrome") == "what is tietze syndrome"
    # ...except in a curated entry's everyday name (the fresh eye: "whats a normal blood suger level").
    everyday = index_of_many(curated("s", "Blood sugar levels", "A normal fasting level is 4 to 6.", ("blood sugar",)))
    assert everyday.respelled("whats a normal blood suger level") == "whats a normal blood sugar level"
    assert everyday.search("whats a normal blood suger level")[0].document.key == "rule:s"


def test_a_common_one_word_name_is_put_right_alone_but_a_rare_one_is_not() -> None:
    # The second look: "astma", "lupis", "pneumona" had no answer, and are answered spelled right.
    common = [doc(f"a{n}", "Asthma", f"Asthma narrows the airways ({n}).", "information") for n in range(35)]
    index = index_of_many(*common, doc("g", "Gaucher", "Gaucher is a rare inherited disorder.", "information"))
    assert index.respelled("what is astma") == "what is asthma"
    assert index.search("what is astma")[0].document.focus == "Asthma"
    # A name a few passages use may have a rare neighbour of its own: left as typed.
    assert index.respelled("what is goucher") == "what is goucher"


def test_a_question_about_catching_it_gets_a_passage_that_says_how_it_spreads_over_the_overview() -> None:
    index = index_of_many(
        doc("i", "Tuberculosis", "Tuberculosis laboratories test cultures for the health department.", "information"),
        doc("t", "Tuberculosis", "Tuberculosis is treated for months; people with it may spread it.", "treatment"),
        doc("d", "Tuberculosis", "A skin test or a blood test shows tuberculosis infection.", "exams and tests"),
    )
    assert index.search("Is tuberculosis contagious?")[0].document.key == "t"
    assert index.search("What is tuberculosis?")[0].document.key == "i"
    # A passage of the asked type (causes) still comes first; then an overview that says how it spreads.
    index = index_of_many(
        doc("o", "Hepatitis B", "Hepatitis B is spread through blood.", "information"),
        doc(
            "r",
            "Hepatitis B",
            "People in contact with blood or who had a sexually transmitted disease.",
            "susceptibility",
        ),
        doc("c", "Gout", "Uric acid crystals cause gout.", "causes"),
        doc("g", "Gout", "Gout does not spread between joints of different people.", "information"),
    )
    assert index.search("Is hepatitis B contagious?")[0].document.key == "o"
    assert index.search("Is gout contagious?")[0].document.key == "c"
    # A cancer "spreads" in the body: that passage does not answer whether it is catching.
    index = index_of_many(
        doc("o", "Leukemia", "Leukemia is a cancer of the white blood cells.", "information"),
        doc("s", "Leukemia", "Signs appear once it has spread to other parts of the body.", "symptoms"),
    )
    assert index.search("Is leukemia contagious?")[0].document.key == "o"


def test_is_it_genetic_asks_whether_it_is_inherited_and_a_genetic_test_is_a_test() -> None:
    assert question_type("is celiac disease genetic") == "inheritance"
    assert question_type("Is it genetic?") == "inheritance"
    assert question_type("is there a genetic test for celiac disease") == "exams and tests"
    assert question_type("what genetic changes cause celiac disease") == "genetic changes"


def test_an_everyday_word_said_apart_from_the_name_does_not_hide_the_topic() -> None:
    index = index_of_many(
        doc("r", "Restless legs syndrome", "An urge to move the legs, worse in the evening and at night.", "causes"),
        doc("b", "Night blindness", "Trouble seeing in dim light.", "information"),
        doc("c", "Coats disease", "An eye disorder with abnormal blood vessels in the retina.", "information"),
        doc("p", "Plus disease", "Widened, twisted vessels at the back of the eye.", "information"),
        # Our own entries say which words are everyday English.
        Document(key="rule:1", title="Sleep", focus="Sleep", text="Sleep well at night, plus keep a clear routine."),
    )
    assert index.search("what causes restless legs at night")[0].document.key == "r"
    # Next to the name, the same everyday word makes another name: not Coats disease.
    assert [hit.document.key for hit in index.search("what is coats plus syndrome")] != ["c"]


def test_cardiac_arrest_is_not_the_heart_attack_entrys_topic(curated_data, knowledge_base):
    from knowledge.models import Passage

    Passage.objects.create(
        source=knowledge_base,
        external_id="sca-1",
        title="What is sudden cardiac arrest?",
        focus="Sudden cardiac arrest",
        question_type="information",
        text="Sudden cardiac arrest is a condition in which the heart suddenly stops beating.",
    )
    assert retriever.search("what is cardiac arrest")[0].document.focus == "Sudden cardiac arrest"
    assert retriever.search("what are the signs of a heart attack")[0].document.title == "Heart attack warning signs"


def test_an_article_or_a_possessive_more_is_the_same_name() -> None:
    tinnitus = Document(
        key="rule:1",
        title="Tinnitus",
        focus="Tinnitus",
        text="Hearing a sound with no outside source.",
        synonyms=("ringing in ears",),
    )
    index = index_of_many(tinnitus)
    assert index.search("what causes ringing in the ears")[0].document.key == "rule:1"
    assert index.search("why is there ringing in my ears")[0].document.key == "rule:1"


def test_a_curated_entry_answers_for_the_people_it_speaks_of_when_nothing_is_named_for_them() -> None:
    dehydration_text = "Babies are most at risk. Signs include thirst and dark urine; in a baby, a sunken soft spot."
    index = KnowledgeIndex(
        [
            doc("rule:1", "Dehydration", dehydration_text, synonyms=("dehydration",)),
            doc("rule:2", "Gout", "Gout is arthritis of the joints.", synonyms=("gout",)),
            doc("rule:3", "Kidney stones", "Hard lumps; children and adults get them.", synonyms=("kidney stones",)),
            doc("passage:1", "Kidney Stones in Children", "Kidney stones in children are rare.", "information"),
        ]
    )

    assert [hit.document.focus for hit in index.search("signs of dehydration in a baby")] == ["Dehydration"]
    assert index.search("what causes gout in children?") == []  # the entry never speaks of children
    assert index.search("kidney stones in children")[0].document.focus == "Kidney Stones in Children"


def test_the_curated_entries_answer_common_questions_people_ask(curated_data) -> None:
    for question, title in [
        ("What is a normal resting heart rate?", "Heart rate and pulse"),
        ("how do i stop my dad falling at home", "Falls in older people"),
        ("how much paracetamol can i give my 3 year old", "Paracetamol and ibuprofen for children"),
        ("what is a normal blood sugar level", "Blood sugar levels"),
        ("signs of dehydration in a baby", "Dehydration"),
        ("My baby has eczema on his cheeks, what can I do", "Eczema"),  # where on the body is not another topic
        # These two got the entry on taking medicines safely, which gives no limit: "8 g a day" went unchallenged.
        ("is it ok to take 8g of paracetamol a day", "Paracetamol (acetaminophen) for adults"),
        (
            "What is the maximum dose of paracetamol an adult can take in a day?",
            "Paracetamol (acetaminophen) for adults",
        ),
        ("my son is 6 and has a fever", "Fever in children"),
    ]:
        hits = retriever.search(question)
        assert hits and hits[0].document.title == title, (question, [hit.document.title for hit in hits])


def test_with_no_passage_on_inheritance_who_is_at_risk_answers_when_it_speaks_of_families() -> None:
    overview = doc("passage:1", "Bowel growths", "Bowel growths are lumps in the lining of the bowel.", "information")
    risk = doc("passage:2", "Bowel growths", "People with a parent who had them are at higher risk.", "susceptibility")
    other = doc("passage:3", "Gum sores", "Gum sores are small ulcers in the mouth.", "information")
    other_risk = doc("passage:4", "Gum sores", "Smokers and people who are run down get them more.", "susceptibility")
    index = KnowledgeIndex([overview, risk, other, other_risk])

    assert index.search("are bowel growths hereditary?")[0].document.key == "passage:2"
    assert index.search("are gum sores hereditary?")[0].document.key == "passage:3"  # no word on families


def test_a_follow_up_points_back_by_its_pronouns_and_keeps_its_own_words() -> None:
    assert KnowledgeIndex.refers_back("what should she eat?") and KnowledgeIndex.refers_back("is it serious?")
    assert not KnowledgeIndex.refers_back("what should i eat?")
    assert KnowledgeIndex.own_words("how is it treated?") == set()
    assert KnowledgeIndex.own_words("help with my diet") == {"diet"}
    diet = doc("passage:1", "Heart Failure", "Cutting down on salt and a heart-healthy diet help.", "treatment")
    assert KnowledgeIndex.speaks_of(diet, {"eat"})  # "eat" is said as "diet"
    assert not KnowledgeIndex.speaks_of(diet, {"knee"})


def test_chat_and_other_people_around_a_follow_up_are_not_its_topic() -> None:
    assert KnowledgeIndex.own_words("ok, one more question: how is it treated?") == set()
    assert KnowledgeIndex.own_words("what about my husband?") == set()
    assert KnowledgeIndex.own_words("thanks, thats helpful. what foods help?") == {"food"}


def test_everyday_words_around_a_name_do_not_make_it_a_longer_name() -> None:
    # Our own entries' plain English is what makes a word everyday; the padding makes these words
    # common, as they are in a real knowledge base.
    index = KnowledgeIndex(
        [
            *(doc(f"pad{i}", f"Topic {i}", "A normal way to lower it in winter.") for i in range(200)),
            curated(
                "chol",
                "Cholesterol",
                "Too much cholesterol raises heart risk. Eating less fat can lower it; a normal level is checked "
                "with a blood test. Children at school and adults in winter can take vitamin D together with food.",
                ("cholesterol",),
            ),
            doc("ov", "Ovarian cancer", "Ovarian cancer starts in the ovaries.", "information"),
            doc("d", "Vitamin D deficiency", "Vitamin D comes from sunlight and food.", "information"),
            doc("w", "Winter vomiting bug", "Norovirus spreads fast.", "information"),
            doc("h", "Hydrocephalus", "Hydrocephalus is fluid building up in the brain.", "information"),
            doc("p", "Pressure sores", "Pressure sores are skin damage from lying still.", "information"),
        ]
    )
    assert index.search("best way to lower cholesterol without going on tablets?")[0].document.key == "rule:chol"
    assert index.search("whats a normal cholesterol")[0].document.key == "rule:chol"
    # A number in front of a curated phrase that starts with an age is the age ("my 3 year old...").
    kids = curated("kf", "Fever in children", "Children often get fevers from colds.", ("year old has a fever",))
    with_kids = KnowledgeIndex([*index.documents, kids])
    assert with_kids.search("my 3 year old has a fever, what do i do")[0].document.key == "rule:kf"
    assert index.search("my wife has stage 3 ovarian cancer, what are the chances?")[0].document.key == "ov"
    assert index.search("how do you treat vitamin d deficiency in winter")[0].document.key == "d"
    # Name words in front of an imported passage's name still make a longer name.
    assert index.search("What is normal pressure hydrocephalus?") == []
