"""Lorebook activation as front ends do it: keys in the recent chat, selective logic, constant and
disabled entries, scan depth, token budget, insertion order, case, regular expressions, recursion."""

from __future__ import annotations

import json

import pytest

from rolecraft.agent import Agent
from rolecraft.agent.lorebook import Lorebook
from rolecraft.cards import load_character
from rolecraft.character import Character, LoreEntry
from rolecraft.llm import Message
from tests.card_samples import write


def chat(*texts: str) -> list[Message]:
    """Alternating user / assistant messages, oldest first."""
    return [Message(role="user" if i % 2 == 0 else "assistant", content=t) for i, t in enumerate(texts)]


def book(*entries: LoreEntry, **settings) -> Lorebook:
    return Lorebook(Character(full_name="Sera Vale", lore=list(entries)), **settings)


def entry(content: str, keys=(), **fields) -> LoreEntry:
    return LoreEntry(content=content, keys=list(keys), **fields)


def test_primary_keys_activate_case_insensitively_and_only_when_mentioned():
    lore = book(entry("The lamp burns whale oil.", ["lamp", "lantern"]), entry("Tobin sailed away.", ["brother"]))
    assert lore.activate(chat("Is the LAMP lit?")) == ["The lamp burns whale oil."]
    assert lore.activate(chat("Hello there.")) == []
    assert lore.activate(chat("Your brother and the lantern?")) == ["The lamp burns whale oil.", "Tobin sailed away."]


@pytest.mark.parametrize("logic,mentioned,active", [
    ("and_any", "storm", True), ("and_any", "", False),
    ("not_all", "storm", True), ("not_all", "storm and fog", False), ("not_all", "", True),
    ("not_any", "", True), ("not_any", "fog", False),
    ("and_all", "storm and fog", True), ("and_all", "storm", False),
])
def test_secondary_keys_follow_the_entrys_logic(logic, mentioned, active):
    selective = entry("Sera hates sailing in weather.", ["boat"], secondary_keys=["storm", "fog"], selective=True,
                      selective_logic=logic)
    found = book(selective).activate(chat(f"Take the boat? {mentioned}"))
    assert found == (["Sera hates sailing in weather."] if active else [])
    assert book(selective).activate(chat("The weather is fine.")) == []  # the primary key is always needed


def test_secondary_keys_count_only_for_selective_entries():
    loose = entry("Boats!", ["boat"], secondary_keys=["storm"], selective=False)
    assert book(loose).activate(chat("A boat.")) == ["Boats!"]


def test_constant_entries_are_always_in_and_disabled_entries_never():
    lore = book(entry("Sera is 40.", constant=True), entry("Off.", ["lamp"], enabled=False),
                entry("Off and constant.", constant=True, enabled=False), entry("On.", ["lamp"]))
    assert lore.activate(chat("Hello.")) == ["Sera is 40."]
    assert lore.activate(chat("The lamp.")) == ["Sera is 40.", "On."]


def test_scan_depth_limits_how_far_back_keys_are_found():
    history = chat("Tell me of the lamp.", "It burns oil.", "And the weather?")  # "lamp" is third from last
    lamp = entry("The lamp burns whale oil.", ["lamp"])
    assert book(lamp).activate(history) == []  # SillyTavern's default depth: the last two messages
    assert book(lamp, scan_depth=3).activate(history) == ["The lamp burns whale oil."]
    assert book(lamp.model_copy(update={"scan_depth": 3})).activate(history) == ["The lamp burns whale oil."]
    assert book(lamp, scan_depth=0).activate(chat("lamp")) == []
    assert book(lamp).activate([Message(role="system", content="lamp"), *chat("hi")]) == []  # system text is not chat


def test_names_are_part_of_the_scanned_text_and_keys_expand_macros():
    lore = book(entry("A guest's sword.", ["{{user}}'s sword"]), entry("Sera spoke.", ["{{char}}: "]))
    assert lore.activate(chat("Look at Ann's sword."), user="Ann") == ["A guest's sword."]
    assert lore.activate(chat("Look at Bo's sword."), user="Ann") == []
    assert lore.activate(chat("Hi.", "Welcome."), user="Ann") == ["Sera spoke."]  # read as "Sera Vale: Welcome."


def test_budget_keeps_the_highest_insertion_order_and_stops_at_the_first_entry_that_does_not_fit():
    texts = {order: f"Fact {order} " + "x" * 32 for order in (1, 2, 3)}  # 39 characters + a newline: 10 tokens
    lore = [entry(texts[o], ["sea"], insertion_order=o) for o in (1, 3, 2)]
    assert book(*lore, token_budget=30).activate(chat("sea")) == [texts[1], texts[2], texts[3]]
    assert book(*lore, token_budget=29).activate(chat("sea")) == [texts[2], texts[3]]
    assert book(*lore, token_budget=10).activate(chat("sea")) == [texts[3]]
    small = entry("Tiny.", ["sea"], insertion_order=0)
    assert book(*lore, small, token_budget=25).activate(chat("sea")) == [texts[2], texts[3]]  # no skipping ahead
    ranked = [entry("Low order, high priority.", ["sea"], insertion_order=0, priority=10), *lore]
    assert book(*ranked, token_budget=20).activate(chat("sea"))[0] == "Low order, high priority."


def test_entries_come_out_in_insertion_order():
    lore = book(entry("C", ["sea"], insertion_order=30), entry("A", ["sea"], insertion_order=10),
                entry("B", constant=True, insertion_order=20), entry("A2", ["sea"], insertion_order=10))
    assert lore.activate(chat("the sea")) == ["A", "A2", "B", "C"]


def test_case_sensitive_entries_and_whole_words():
    lore = book(entry("Ship.", ["Kestrel"], case_sensitive=True), entry("Cat.", ["cat"], match_whole_words=True))
    assert lore.activate(chat("the kestrel and a catalogue")) == []
    assert lore.activate(chat("the Kestrel and a cat!")) == ["Ship.", "Cat."]


def test_regular_expression_keys():
    lore = book(entry("Shanties.", ["/sea ?shant(y|ies)/i"]), entry("V3 regex.", [r"\bv\d+\b"], use_regex=True),
                entry("Plain slash.", ["a/b"]), entry("Broken.", ["/(unclosed/"]),
                entry("Broken V3.", ["(x"], use_regex=True))
    assert lore.activate(chat("Sing SeaShanties, V3 wait, a/b")) == ["Shanties.", "V3 regex.", "Plain slash."]
    assert lore.activate(chat("seashanty")) == ["Shanties."]
    assert lore.activate(chat("nothing")) == []


def test_a_pattern_that_backtracks_forever_matches_nothing():
    lore = book(entry("Never.", ["/(a|aa)+$/"]), entry("Fine.", ["a"]))
    assert lore.activate(chat("a" * 5000 + "!")) == ["Fine."]
    assert lore.activate(chat("a" * 5000 + "!")) == ["Fine."]  # and is not tried again


def test_recursive_scanning_lets_inserted_entries_trigger_others():
    first, second = entry("The lamp was lit by Tobin.", ["lamp"]), entry("Tobin is Sera's brother.", ["tobin"])
    assert book(first, second).activate(chat("The lamp?")) == ["The lamp was lit by Tobin."]
    assert book(first, second, recursive=True).activate(chat("The lamp?")) == [
        "The lamp was lit by Tobin.", "Tobin is Sera's brother."]


def card_with_book(tmp_path, entries, **settings):
    book = {"entries": entries, **settings}
    card = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": "Sera Vale", "description": "A keeper.", "character_book": book}}
    return load_character(write(tmp_path / "card.json", json.dumps(card)))


def test_a_cards_book_settings_and_sillytavern_fields_are_read(tmp_path):
    character = card_with_book(tmp_path, [
        {"keys": ["lamp"], "content": "Lamp.", "extensions": {"scan_depth": 1}},
        {"keys": ["boat"], "secondary_keys": ["storm"], "selective": True, "content": "Storm boat.",
         "extensions": {"selectiveLogic": 2}},
        {"keys": ["Kestrel"], "content": "Ship.", "extensions": {"case_sensitive": True}},
        {"keys": ["cat"], "content": "Cat.", "extensions": {"match_whole_words": True}, "constant": False},
    ], scan_depth=3, token_budget=500, recursive_scanning=False)
    lore = Lorebook.from_character(character)
    assert (lore.scan_depth, lore.token_budget, lore.recursive) == (3, 375, False)  # capped: 25 % of 1,500 tokens
    assert lore.activate(chat("lamp", "boat", "kestrel catalogue")) == ["Storm boat."]  # NOT ANY: no storm
    assert lore.activate(chat("lamp boat storm", "x", "Kestrel cat")) == ["Ship.", "Cat."]
    assert Lorebook.from_character(character, context_tokens=100_000).token_budget == 500


def test_a_card_with_200_entries_inserts_what_its_author_meant(tmp_path):
    entries = [{"keys": [f"topic{i:03d}"], "content": f"Fact number {i}.", "insertion_order": i, "enabled": i % 10 != 7}
               for i in range(200)]
    entries[5] |= {"constant": True}
    character = card_with_book(tmp_path, entries)
    lore = Lorebook.from_character(character)
    history = chat("Tell me about topic017 and topic150.", "Well.", "And topic042, topic199, topic077?")
    assert lore.activate(history) == ["Fact number 5.", "Fact number 42.", "Fact number 199."]  # 77: disabled
    enabled = [i for i in range(200) if i % 10 != 7]
    everything = lore.activate(chat(" ".join(f"topic{i:03d}" for i in range(200))))
    assert everything == [f"Fact number {i}." for i in enabled[-75:]]  # 5 tokens each: the top 75 fill 375


def test_the_agent_puts_activated_lore_in_its_prompt(tmp_path):
    character = card_with_book(tmp_path, [{"keys": ["lamp"], "content": "The lamp burns whale oil."},
                                          {"keys": [], "content": "Sera is forty.", "constant": True}])
    agent = Agent(character, None)
    system = agent.messages([{"role": "user", "content": "Is the lamp lit?"}])[0].content
    assert "- The lamp burns whale oil.\n- Sera is forty." in system  # both at insertion order 0: book order
    system = agent.messages([{"role": "user", "content": "Hello."}])[0].content
    assert "- Sera is forty." in system and "whale oil" not in system
    assert Lorebook.from_character(Character(full_name="No Lore")) is None
