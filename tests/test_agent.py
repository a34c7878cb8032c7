"""The Agent: persona prompt from the card, memory within the window, retrieval, workspaces, replies."""

from __future__ import annotations

import json
import re

import pytest

from rolecraft.agent import Agent, Reply
from rolecraft.character import Character, LoreEntry
from rolecraft.errors import RolecraftError
from rolecraft.llm import Message, SamplingParams, run_sync
from rolecraft.workspace import Workspace
from tests.adapters import random_lora

CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Captain Mira",
        "description": "{{char}} commands the airship Kestrel.",
        "personality": "dry humour, fiercely loyal",
        "scenario": "{{user}} has just boarded the Kestrel.",
        "first_mes": "Welcome aboard, {{user}}. I am {{char}}.",
        "mes_example": "<START>\n{{user}}: Where are we headed?\n{{char}}: Wherever the wind pays best.",
        "creator_notes": "SECRET-CREATOR-NOTE do not show",
        "system_prompt": "{{original}} Never break character.",
        "post_history_instructions": "Answer in at most two sentences.",
        "alternate_greetings": [],
        "character_book": {"entries": [{"keys": ["kestrel"], "content": "The Kestrel has four engines.", "enabled": True}]},
        "tags": [],
        "creator": "",
        "character_version": "1",
        "extensions": {},
    },
}


class KeywordRetriever:
    """A real (if simple) implementation of the Retriever protocol: facts sharing a word with the query."""

    def __init__(self, facts: list[str]):
        self.facts = facts
        self.queries: list[str] = []

    def search(self, query: str, k: int) -> list[str]:
        self.queries.append(query)
        words = set(re.findall(r"\w+", query.lower())) - {"do", "you", "a", "the"}
        return [f for f in self.facts if words & set(re.findall(r"\w+", f.lower()))][:k]


@pytest.fixture(scope="module")
def mira(tmp_path_factory) -> Character:
    from rolecraft.cards import load_character

    path = tmp_path_factory.mktemp("card") / "mira.json"
    path.write_text(json.dumps(CARD))
    return load_character(path)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from rolecraft.llm import load_model

    return load_model(f"hf:{tiny_model_dir}")


def test_persona_prompt_comes_from_the_card_and_never_from_creator_notes(mira, tiny):
    agent = Agent(mira, tiny, user="Tom")
    [system, user] = agent.messages([{"role": "user", "content": "Hi"}])
    assert system.role == "system" and user.role == "user"
    text = system.content
    assert text.startswith("You are Captain Mira.") and "Never break character." in text  # {{original}} expanded
    for part in ("Captain Mira commands the airship Kestrel.", "dry humour", "Tom has just boarded", "Wherever the wind pays best"):
        assert part in text
    assert "<START>" not in text and "{{" not in text
    everything = json.dumps([m.model_dump() for m in agent.messages([{"role": "user", "content": "Hi"}])])
    assert "SECRET-CREATOR-NOTE" not in everything
    assert agent.greeting() == "Welcome aboard, Tom. I am Captain Mira."
    # post_history_instructions follow the newest user turn.
    assert user.content == "Hi\n\nAnswer in at most two sentences."


def test_oldest_turns_are_dropped_first_and_the_persona_stays(tiny):
    agent = Agent(Character(full_name="Bob Stone", description="A mason."), tiny, context_chars=800)
    history = []
    for i in range(30):
        history += [Message(role="user", content=f"question {i:02d} " + "x" * 40),
                    Message(role="assistant", content=f"answer {i:02d} " + "y" * 40)]
    history.append(Message(role="user", content="last question"))
    messages = agent.messages(history)
    assert messages[0].role == "system" and "Bob Stone" in messages[0].content
    kept = messages[1:]
    assert kept[-1].content == "last question"
    assert kept == history[len(history) - len(kept):]  # a suffix: only the oldest turns went
    assert 2 < len(kept) < len(history)
    assert sum(len(m.content) for m in messages) <= 800
    # A single newest turn longer than the window keeps its end.
    [_, only] = agent.messages([Message(role="user", content="a" * 5000 + "THE END")])
    assert only.content.endswith("THE END") and len(only.content) < 800


def test_client_system_messages_are_merged_after_the_persona(tiny):
    agent = Agent(Character(full_name="Eve Grey"), tiny)
    messages = agent.messages([
        {"role": "system", "content": "Scene: a train."},
        {"role": "user", "content": "Hello"},
        {"role": "system", "content": "Keep it short."},
    ])
    assert [m.role for m in messages] == ["system", "user"]
    persona, scene, short = (messages[0].content.index(s) for s in ("You are Eve Grey", "Scene: a train.", "Keep it short."))
    assert persona < scene < short


def test_retrieved_facts_reach_the_prompt_and_the_reply(tiny):
    character = Character(full_name="Alice Liddell", statements=["Alice has a cat named Dinah."],
                          lore=[LoreEntry(keys=["tea"], content="Alice drinks tea with the Hatter.")])
    retriever = KeywordRetriever(character.facts())
    agent = Agent(character, tiny, retriever=retriever, k=1)
    history = [{"role": "user", "content": "Do you like tea?"}]
    [system, _] = agent.messages(history)
    assert "- Alice drinks tea with the Hatter." in system.content and "Dinah" not in system.content
    reply = run_sync(agent.respond(history, SamplingParams(max_tokens=4, temperature=0)))
    assert isinstance(reply, Reply) and reply.facts == ["Alice drinks tea with the Hatter."]
    assert retriever.queries[-1] == "Do you like tea?"


def test_stream_gives_the_same_reply_as_respond(mira, tiny):
    agent = Agent(mira, tiny)
    history = [{"role": "assistant", "content": agent.greeting()}, {"role": "user", "content": "Where to?"}]
    params = SamplingParams(max_tokens=24, temperature=1.0, seed=5)
    reply = run_sync(agent.respond(history, params))

    async def pieces():
        return [c async for c in agent.stream(history, params)]

    chunks = run_sync(pieces())
    assert len(chunks) > 2  # really streamed, not one blob
    assert "".join(c.text for c in chunks).strip() == reply.text and reply.text
    assert chunks[-1].completion_tokens == reply.completion.completion_tokens == 24
    assert chunks[-1].finish_reason == "length"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir, mira) -> Workspace:
    ws = Workspace.for_character(mira, tmp_path_factory.mktemp("ws") / mira.slug)
    ws.write("statements", [{"character": "Captain Mira", "passage": "p", "statement": "Captain Mira was born in Vell."}])
    random_lora(tiny_model_dir, ws.path("adapters/sft"), seed=1)
    return ws


def test_from_workspace_uses_the_trained_adapter_and_statements(workspace, tiny_model_dir):
    agent = Agent.from_workspace(workspace, f"hf:{tiny_model_dir}", retrieval=False)
    assert agent.model.adapter == workspace.path("adapters/sft")
    assert "Captain Mira was born in Vell." in agent.character.statements
    assert agent.greeting().startswith("Welcome aboard")
    plain = Agent.from_workspace(workspace, f"hf:{tiny_model_dir}", adapter="none", retrieval=False)
    assert plain.model.adapter is None
    history = [{"role": "user", "content": "Tell me about the Kestrel"}]
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=2)
    trained, base = (run_sync(a.respond(history, params)).text for a in (agent, plain))
    assert trained != base  # the adapter is really applied


def test_a_trained_agent_is_served_as_the_build_evaluated_it_without_retrieved_facts(workspace, tiny_model_dir):
    """The build trains its adapters and scores the agent it serves without facts in the prompt; with
    them, the embedded student answered every chat question with the same fact. So by default a
    trained agent retrieves nothing, a prompt-only one retrieves, and either can be told otherwise."""
    model = f"hf:{tiny_model_dir}"
    trained = Agent.from_workspace(workspace, model)
    assert trained.model.adapter is not None and trained.retriever is None
    assert Agent.from_workspace(workspace, model, adapter="none").retriever is not None
    assert Agent.from_workspace(workspace, model, retrieval=True).retriever is not None


def test_load_finds_a_character_by_file_folder_or_name(workspace, tiny_model_dir, monkeypatch):
    model = f"hf:{tiny_model_dir}"
    assert Agent.load(str(workspace.root), model=model, retrieval=False).model.adapter is not None
    monkeypatch.setenv("ROLECRAFT_WORKSPACES", str(workspace.root.parent))
    assert Agent.load("Captain Mira", model=model, retrieval=False).character.full_name == "Captain Mira"
    with pytest.raises(RolecraftError, match="neither a file"):
        Agent.load("Nobody Atall", model=model)
    with pytest.raises(RolecraftError, match="no LoRA adapter"):
        Agent.from_workspace(workspace, model, adapter="dpo")
    with pytest.raises(RolecraftError, match="unknown prompt style"):
        Agent(Character(full_name="X"), None, style="poem")  # type: ignore[arg-type]


def test_a_cards_lorebook_is_retrieved_by_its_keys_without_a_build(mira, tiny):
    agent = Agent.load(mira.source.path, model=tiny)  # a card file, never built
    assert agent.retrieve([Message(role="user", content="Is the KESTREL fast?")]) == ["The Kestrel has four engines."]
    assert agent.retrieve([Message(role="user", content="Hello")]) == []
    assert Agent.load(mira.source.path, model=tiny, retrieval=False).retriever is None


def relevance_classifier(folder):
    """A small but real relevance classifier folder, as `rolecraft discriminators train` writes one."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rolecraft.faithfulness.discriminators import META
    from rolecraft.llm.embedded import embedded_encoder

    out = folder.discriminator_dir("relevance")
    tokenizer = AutoTokenizer.from_pretrained(embedded_encoder())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / META).write_text(json.dumps({"kind": "relevance", "labels": ["no", "yes"], "max_length": 64}))


def test_a_built_character_retrieves_with_its_relevance_classifier(workspace, tiny):
    from rolecraft.faithfulness.retrieval import FactRetriever

    relevance_classifier(workspace)
    agent = Agent.from_workspace(workspace, tiny, k=2)
    assert isinstance(agent.retriever, FactRetriever)
    assert "Captain Mira was born in Vell." in agent.retriever.facts  # statements.jsonl joins the card's facts
    history = [{"role": "user", "content": "Where were you born?"}]
    reply = run_sync(agent.respond(history, SamplingParams(max_tokens=2, temperature=0)))
    assert reply.facts == agent.retriever.search("Where were you born?", 2) and len(reply.facts) == 2
    assert all(f"- {fact}" in agent.messages(history)[0].content for fact in reply.facts)


def test_character_llm_style_uses_the_papers_protocol(tiny):
    from rolecraft.agent.charllm import charllm_prompt, respond_character_llm

    character = Character(full_name="Ludwig van Beethoven", short_name="Beethoven", paragraphs=["A composer."])
    agent = Agent(character, tiny, style="character-llm")
    history = [{"role": "user", "content": "What are you composing?"}]
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=9)
    reply = run_sync(agent.respond(history, params))
    assert reply == run_sync(respond_character_llm(character, tiny, history, params))
    assert charllm_prompt(character, history).endswith("Beethoven (")

    async def pieces():
        return [c async for c in agent.stream(history, params)]

    *thoughts, speech = run_sync(pieces())  # each thought once complete, then the speech as one piece
    assert [t.reasoning for t in thoughts] == reply.thoughts and not any(t.text for t in thoughts)
    assert speech.text == reply.text and not speech.reasoning
