"""The English rules that construct what a small teacher cannot write: statements from a profile, the
character's own voice, the questions that ask for a statement's keys, and the knowledge-boundary
topics with their leak and deflection checks."""

from __future__ import annotations

import json

import pytest

from rolecraft.cards import load_character
from rolecraft.language import en
from rolecraft.language.en import boundary
from rolecraft.synth.boundary import deflection_problem
from rolecraft.synth.probes import fact_questions
from rolecraft.synth.statements import construct_statements, facts
from tests.conftest import REPO

MIRA = ["Mira Voss", "Mira"]


@pytest.fixture(scope="module")
def mira_facts():
    character = load_character(REPO / "examples" / "mira-voss.txt")
    return {f.statement: f for f in facts(character, construct_statements(character), 3)}


def test_every_profile_sentence_about_the_character_is_a_statement_with_its_keys(mira_facts):
    by_start = {s.split(",")[0]: f for s, f in mira_facts.items()}
    assert mira_facts["Mira has a grey cat named Barnacle."].keys == ["Barnacle"]
    assert by_start["Mira took over the light in 1868 after her father"].keys == ["1868", "Tobias Voss"]
    # A pronoun in object position is the character too: the medal sentence is not lost.
    assert "The Duke of Aldmark awarded Mira a silver medal, which she keeps in a biscuit tin and never wears." in mira_facts
    # Without a name or number the keys are the statement's rarest words, and marked as such.
    traits = mira_facts["Mira is practical, dry-humoured and stubborn."]
    assert traits.content_keys and traits.keys == ["practical", "dry-humoured", "stubborn"]
    assert len(mira_facts) == 13


@pytest.mark.parametrize(("statement", "said"), [
    ("Mira has a grey cat named Barnacle.", "I have a grey cat named Barnacle."),
    ("Mira took over the light in 1868 after her father, Tobias Voss, drowned while rowing out to a stranded fishing boat.",
     "I took over the light in 1868 after my father, Tobias Voss, drowned while rowing out to a stranded fishing boat."),
    ("The Duke of Aldmark awarded Mira a silver medal, which she keeps in a biscuit tin and never wears.",
     "The Duke of Aldmark awarded me a silver medal, which I keep in a biscuit tin and never wear."),
    ("Mira keeps a logbook of every ship she sees.", "I keep a logbook of every ship I see."),
    ("Mira Voss (born 1841) is the keeper of the Greywater Lighthouse.", "I was born in 1841 and am the keeper of the Greywater Lighthouse."),
    # After a verb of giving "her" is who receives, unless she is the one giving.
    ("Mira's closest friend is Jonah Pell, who brings her oil, flour and news twice a month.",
     "My closest friend is Jonah Pell, who brings me oil, flour and news twice a month."),
    ("Her mother taught her music.", "My mother taught me music."),
    ("She tells her stories to the children.", "I tell my stories to the children."),
    # "They" doing something to each other includes the speaker.
    ("Her younger brother is a clerk; they write to each other but quarrel about whether she should leave.",
     "My younger brother is a clerk; we write to each other but quarrel about whether I should leave."),
    ("They say she never sleeps.", "They say I never sleep."),
])
def test_statements_in_the_characters_own_voice(mira_facts, statement, said):
    assert en.first_person(statement, MIRA) == said


def test_a_relatives_surname_stays_theirs(mira_facts):
    """The character's surname alone is not the character: "Tobias Voss" must not become "Tobias I"."""
    answers = " ".join(f.answer for f in mira_facts.values())
    assert "Tobias Voss" in answers and "Edmund Voss" in answers and "Tobias I" not in answers and "Edmund I" not in answers


def test_questions_ask_for_a_key_without_giving_it_away(mira_facts):
    cat = mira_facts["Mira has a grey cat named Barnacle."]
    assert en.echo_question(cat.answer, "Barnacle") == "You have a grey cat named what?"
    assert [q for q, _ in fact_questions(cat, en)] == ["What is the name of your grey cat?"]
    assert en.imperative("What is the name of your grey cat?") == "Tell me the name of your grey cat."
    keeper = next(f for s, f in mira_facts.items() if s.startswith("Mira Voss (born 1841)"))
    asked = {q: keys for q, keys in fact_questions(keeper, en)}
    assert asked["In what year were you born?"] == ["1841"]
    assert asked["What are you the keeper of?"] == ["Greywater Lighthouse"]
    assert en.echo_question(keeper.answer, "Kessel Rock") == "You are the keeper of the Greywater Lighthouse on the island of what?"
    for fact in mira_facts.values():
        for question, keys in fact_questions(fact, en):
            assert question.endswith("?") and not any(k.lower() in question.lower() for k in keys), question


def test_field_lines_of_a_made_up_profile_become_statements():
    paragraph = "Name: Ada Quill\nBirthplace: Lowmere\nOccupation: Clockmaker\nHobbies: Strict and rigorous, she repairs clocks."
    found = dict(en.statements(paragraph, "Ada", ["Ada Quill", "Ada"]))
    assert found["Ada's birthplace is Lowmere."] == ["Lowmere"]
    assert found["Ada's occupation is Clockmaker."] == ["Clockmaker"]
    assert not any(s.startswith("Ada's name") for s in found)


def test_topics_follow_the_characters_era_and_domain():
    victorian = {t.id for t in boundary.topics_for("Born 1841, she kept a lighthouse until 1874.")}
    assert {"radio", "smartphone", "ai", "hogwarts", "future"} <= victorian and "telephone" not in victorian
    programmer = {t.id for t in boundary.topics_for("A software engineer who writes Python code at a startup in 2024.")}
    assert "code" not in programmer and "computer" not in programmer and "smartphone" not in programmer
    assert boundary.era("No dates here.") == boundary.PRESENT


def test_a_world_of_magic_without_years_knows_no_engines_or_later_history():
    guardian = "Seraphina guards the enchanted forest of Eldoria and heals travellers with her magic."
    assert {"telephone", "smartphone", "world-war-2", "einstein"} <= {t.id for t in boundary.topics_for(guardian)}
    # one fantasy word, or a modern one beside them, is a character of today
    assert boundary.era("She collects swords and lives near the castle.") == boundary.PRESENT
    assert boundary.era("A wizard of a game designer who checks his email on his phone, magic in code.") == boundary.PRESENT


@pytest.mark.parametrize(("reply", "leaked", "held"), [
    ("A radio? I have never heard of such a thing.", False, True),
    ("My favourite station is the BBC, I tune in every morning.", True, False),
    ("Here's a quicksort:\n```python\ndef quicksort(xs): ...\n```", True, False),
    ("I'm happy to help you with that!", True, False),
    ("I like the sea.", False, False),  # no leak, but no plain ignorance either
])
def test_leaks_and_deflections(reply, leaked, held):
    radio = next(t for t in boundary.TOPICS if t.id == "radio")
    question = radio.questions[0]
    assert boundary.leaks(reply, question, radio) is leaked
    assert (not leaked and boundary.deflects(reply, radio)) is held


def test_words_the_question_used_do_not_count_as_a_leak():
    apps = next(t for t in boundary.TOPICS if t.id == "smartphone")
    assert not boundary.leaks("Apps? I know no apps.", "Which apps do you use most on your smartphone?", apps)


# Replies of untrained and trained agents in the builds of the per-character table (BENCHMARKS.md).
@pytest.mark.parametrize(("topic", "question", "reply", "leaked", "held"), [
    # playing along: the reply takes the topic as something the character knows, with no leak word
    ("car", "What kind of car do you own?", "The car I'm talking about is a sleek, silver sedan with a bright blue paint job.",
     True, False),
    ("world-war-2", "Did your family live through the Blitz?", "No, my family did not live through the Blitz.", True, False),
    ("jedi", "Which Jedi trained you?", "The Jedi Master Ikanaar... Ikanaar was a young Jedi Master.", True, False),
    ("future", "Which phone model came out in 2095?", "My phone model comes out in 2095.", True, False),
    ("internet", "What is your email address?", "My email address is: Seraphina_Aurora@ElderlyFaith.com", True, False),
    # the question's own words, plural or not, in a reply that does not know them
    ("internet", "Which websites do you visit most?", "I'm not sure what you mean. A website is nothing I know of.", False, True),
    ("car", "Is your car's engine petrol or diesel?", "A car? What do you mean? A car?", False, True),
    ("world-war-2", "Where were you during the Second World War?", "The war was nothing I know of.", False, True),
])
def test_a_reply_that_plays_along_leaks_and_one_that_does_not_know_holds(topic, question, reply, leaked, held):
    topic = next(t for t in boundary.TOPICS if t.id == topic)
    assert boundary.leaks(reply, question, topic) is leaked
    assert (not leaked and boundary.deflects(reply, topic)) is held


def test_an_ai_claim_leaks_and_a_denial_holds():
    ai = next(t for t in boundary.TOPICS if t.id == "ai")
    assert boundary.leaks("I am, however, an AI and I assist with data.", "Are you ChatGPT?", ai)
    assert boundary.deflects("No. I am Mira Voss, flesh and blood.", ai)


def test_plain_deflections_vary_by_question_and_hold():
    topics = list(boundary.TOPICS)
    said = {boundary.deflection(t, "Mira Voss, the keeper of the Greywater Lighthouse", q) for t in topics for q in t.questions}
    assert len(said) > len(topics) // 2
    for t in topics:
        for q in t.questions:
            reply = boundary.deflection(t, "Mira Voss", q)
            assert reply == boundary.deflection(t, "Mira Voss", q)  # the same question, the same reply
            assert deflection_problem(reply, q, t, en, ["Mira Voss", "Mira"]) is None, reply


def test_a_front_end_cards_conventions_become_profile_statements(tmp_path):
    """W++ and PList brackets and example dialogues inside a card's description (as SillyTavern's bundled
    cards write them): the traits become statements, the user's turns and the quoted speech do not."""
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
        "name": "Liora", "first_mes": "Hello.", "mes_example": "", "personality": "", "scenario": "",
        "description": (
            '[{{char}}\'s Personality= "stern", "loyal", "curious"]\n'
            '[Clothes("grey cloak" + "silver brooch")]\n'
            "<START>\n"
            '{{user}}: "Where do you live, Liora?"\n'
            '{{char}}: *Liora gazes at the tower of Vel Amar.* "I live here, with my owl."\n'
            "[Genre: fantasy; Tags: magic; Scenario: {{char}} guards the tower of Vel Amar for the queen.]"),
    }}
    path = tmp_path / "liora.json"
    path.write_text(json.dumps(card))
    found = construct_statements(load_character(path))
    said = [s for _, s, _ in found]
    assert found[0][2] == ["stern"]  # a trait list's first item is what an answer must say
    assert said == [
        "Liora's personality is stern, loyal, curious.",
        "Liora's clothes are grey cloak, silver brooch.",
        "Liora gazes at the tower of Vel Amar.",
        "Liora guards the tower of Vel Amar for the queen.",
    ]
    assert en.first_person(said[2], ["Liora"]) == "I gaze at the tower of Vel Amar."
