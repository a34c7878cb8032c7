"""The OpenAI-compatible server, driven by the official `openai` client against real servers on loopback."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from rolecraft.character import Character
from rolecraft.llm import Message, SamplingParams, run_sync
from rolecraft.llm.hf import HFChatModel
from rolecraft.serve import BackgroundServer, ServeSettings, build_agents, create_app, discover
from rolecraft.workspace import Workspace
from tests.adapters import random_lora
from tests.streaming_upstream import Upstream

CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {"name": "Captain Mira", "description": "{{char}} commands the airship Kestrel.",
             "first_mes": "Welcome aboard, {{user}}.", "personality": "dry humour"},
}


def _characters(root, tiny_model_dir):
    """Two trained characters (distinct random adapters) in a workspace root, and a card file."""
    for seed, name in ((1, "Alice Liddell"), (2, "Bob Stone")):
        character = Character(full_name=name, description=f"{name} is a test character.", greeting=f"Hi, I am {name}.")
        ws = Workspace.for_character(character, root / "workspaces" / character.slug)
        random_lora(tiny_model_dir, ws.path("adapters/sft"), seed=seed)
    card = root / "mira.json"
    card.write_text(json.dumps(CARD))
    return discover([card], root / "workspaces")


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory, tiny_model_dir):
    served = _characters(tmp_path_factory.mktemp("serve"), tiny_model_dir)
    agents = build_agents(served, model=f"hf:{tiny_model_dir}", context_chars=1500)
    with BackgroundServer(create_app(agents, trained={s.id for s in served if s.adapter})) as server:
        server.agents, server.served = agents, served
        yield server


HISTORY = [{"role": "user", "content": "Tell me about yourself."}]


def test_models_are_the_characters(tiny_server):
    client = openai.OpenAI(base_url=tiny_server.url, api_key="unused")
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"alice-liddell", "bob-stone", "captain-mira"}
    mira = models["captain-mira"].model_dump()
    assert mira["greeting"] == "Welcome aboard, User." and mira["adapter"] is False
    assert models["alice-liddell"].model_dump()["adapter"] is True
    assert client.models.retrieve("bob-stone").id == "bob-stone"


def test_each_character_gets_exactly_its_own_adapter_even_concurrently(tiny_server, tiny_model_dir):
    """Replies through the shared multi-adapter model equal replies from a model loaded with only that
    character's adapter (or none), in any order and with requests arriving at once."""
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=11)
    adapters = {s.id: s.adapter for s in tiny_server.served}
    expected = {}
    for model_id, agent in tiny_server.agents.items():
        alone = HFChatModel(str(tiny_model_dir), adapter=adapters[model_id])
        [done] = run_sync(alone.generate([agent.messages(HISTORY)], params))
        expected[model_id] = done.text.strip()
    assert len(set(expected.values())) == 3  # the adapters really differ from each other and the base

    async def ask_all(order):
        client = openai.AsyncOpenAI(base_url=tiny_server.url, api_key="unused")
        replies = await asyncio.gather(*(
            client.chat.completions.create(model=m, messages=HISTORY, max_tokens=12, temperature=1.0, seed=11)
            for m in order
        ))
        return [r.choices[0].message.content for r in replies]

    order = ["alice-liddell", "captain-mira", "bob-stone", "alice-liddell", "bob-stone", "captain-mira"]
    assert run_sync(ask_all(order)) == [expected[m] for m in order]


def test_streaming_matches_the_whole_reply(tiny_server):
    client = openai.OpenAI(base_url=tiny_server.url, api_key="unused")
    ask = dict(model="bob-stone", messages=HISTORY, max_tokens=16, temperature=1.0, seed=3,
               extra_body={"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1})
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 2 and "".join(pieces) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 16


def test_a_client_leaving_mid_stream_stops_its_generation(tiny_server):
    """The abandoned generation ends at its next token and frees the model for the next request."""
    # Greedy, the tiny model writes newlines until the token limit: 900 tokens take ~15 s.
    long = {"model": "alice-liddell", "messages": HISTORY, "max_tokens": 900, "temperature": 0, "stream": True}
    with httpx.stream("POST", tiny_server.url + "/chat/completions", json=long, timeout=30) as response:
        assert next(response.iter_lines()).startswith("data: ")
        time.sleep(0.5)  # generating now; hang up
    started = time.monotonic()
    short = {"model": "bob-stone", "messages": HISTORY, "max_tokens": 2}
    assert httpx.post(tiny_server.url + "/chat/completions", json=short, timeout=60).status_code == 200
    assert time.monotonic() - started < 5
    assert httpx.get(tiny_server.base + "/health").json()["active"] == 0


def test_text_completions_continue_the_raw_prompt(tiny_server, tiny_model_dir):
    """No chat template and no persona: exactly the character's model continuing the prompt."""
    prompt = "Alice (speaking): Where is the Hatter?\nBob (speaking):"
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=4)
    adapter = next(s.adapter for s in tiny_server.served if s.id == "alice-liddell")
    [alone] = run_sync(HFChatModel(str(tiny_model_dir), adapter=adapter).complete([prompt], params))
    client = openai.OpenAI(base_url=tiny_server.url, api_key="unused")
    ask = dict(model="alice-liddell", prompt=prompt, max_tokens=10, temperature=1.0, seed=4)
    assert client.completions.create(**ask).choices[0].text == alone.text
    streamed = "".join(c.choices[0].text for c in client.completions.create(**ask, stream=True) if c.choices)
    assert streamed == alone.text


def test_several_system_messages_are_merged_and_sent_upstream_with_the_persona(tmp_path, tiny_model_dir):
    """--backend openai: forwards to a vLLM-like server: a trained character under its adapter's id,
    a prompt-only one under the base id, one system message carrying persona + client systems."""
    served = _characters(tmp_path, tiny_model_dir)
    upstream = Upstream(token_delay=0.005)
    with upstream.serve() as up:
        agents = build_agents(served, backend=f"openai:base@{up.url}")
        with BackgroundServer(create_app(agents)) as server:
            client = openai.OpenAI(base_url=server.url, api_key="unused")
            messages = [{"role": "system", "content": "Scene: a train."}, {"role": "user", "content": "Hello there"},
                        {"role": "system", "content": "Keep it short."}]
            reply = client.chat.completions.create(model="alice-liddell", messages=messages, max_tokens=8)
            assert reply.choices[0].message.content == "echo Hello there"
            sent = upstream.log[-1]
            assert sent["model"] == "alice-liddell" and [m["role"] for m in sent["messages"]] == ["system", "user"]
            system = sent["messages"][0]["content"]
            assert system.index("You are Alice Liddell") < system.index("Scene: a train.") < system.index("Keep it short.")
            stream = client.chat.completions.create(model="captain-mira", messages=messages[1:2], stream=True)
            pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
            assert pieces == ["echo", " Hello", " there"]  # passed through as the upstream streamed it
            assert upstream.log[-1]["model"] == "base" and upstream.log[-1]["stream"] is True
            text = client.completions.create(model="bob-stone", prompt="once upon a time", max_tokens=3)
            assert text.choices[0].text == "echo once upon" and upstream.log[-1]["model"] == "bob-stone"


def test_samplers_and_logprobs_are_passed_to_an_openai_upstream(tmp_path, tiny_model_dir):
    """Only the samplers that are set go upstream (OpenAI itself rejects top_k and the like); n choices
    are n requests with seeds seed, seed+1; the upstream's log-probabilities come back in OpenAI's shape."""
    served = _characters(tmp_path, tiny_model_dir)
    upstream = Upstream()
    with upstream.serve() as up, BackgroundServer(create_app(build_agents(served, backend=f"openai:base@{up.url}"))) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused")
        reply = client.chat.completions.create(
            model="alice-liddell", messages=HISTORY, max_tokens=4, seed=9, n=2, logprobs=True, top_logprobs=2,
            frequency_penalty=0.5, logit_bias={"7": -100}, extra_body={"top_k": 40, "repetition_penalty": 1.2},
        )
        sent = upstream.log[-2:]
        assert sorted(b["seed"] for b in sent) == [9, 10] and len(reply.choices) == 2
        for body in sent:
            assert body["top_k"] == 40 and body["repetition_penalty"] == 1.2 and body["frequency_penalty"] == 0.5
            assert body["logit_bias"] == {"7": -100} and body["logprobs"] is True and body["top_logprobs"] == 2
            assert "min_p" not in body and "presence_penalty" not in body
        tokens = [t.token for t in reply.choices[0].logprobs.content]
        assert "".join(tokens) == reply.choices[0].message.content == "echo Tell me about"
        text = client.completions.create(model="bob-stone", prompt="once upon a time", max_tokens=3, logprobs=1)
        assert upstream.log[-1]["logprobs"] == 1 and text.choices[0].logprobs.tokens == ["echo", " once", " upon"]


def test_api_key_guards_the_api_but_not_the_page(tiny_server):
    agents = tiny_server.agents
    with BackgroundServer(create_app(agents, ServeSettings(api_key="s3cret-key"))) as server:
        assert httpx.get(server.base + "/").status_code == 200
        denied = httpx.get(server.url + "/models")
        assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url, api_key="wrong").models.list()
        assert len(openai.OpenAI(base_url=server.url, api_key="s3cret-key").models.list().data) == 3


def test_overload_is_answered_with_503_and_the_server_recovers(tmp_path, tiny_model_dir):
    served = _characters(tmp_path, tiny_model_dir)
    with Upstream(latency=0.5).serve() as up:
        agents = build_agents(served, backend=f"openai:base@{up.url}")
        with BackgroundServer(create_app(agents, ServeSettings(max_pending=1))) as server:
            ask = {"model": "bob-stone", "messages": HISTORY, "max_tokens": 4}

            async def two_at_once():
                async with httpx.AsyncClient(timeout=10) as client:
                    first = asyncio.ensure_future(client.post(server.url + "/chat/completions", json=ask))
                    await asyncio.sleep(0.2)
                    second = await client.post(server.url + "/chat/completions", json=ask)
                    return await first, second

            first, second = run_sync(two_at_once())
            assert first.status_code == 200
            assert second.status_code == 503 and second.headers["retry-after"] == "1"
            assert second.json()["error"]["type"] == "overloaded_error"
            assert httpx.post(server.url + "/chat/completions", json=ask, timeout=10).status_code == 200


@pytest.mark.slow
def test_trained_characters_on_the_embedded_model_get_their_adapter_on_llama_cpp(tmp_path):
    """One llama.cpp model per trained character (its adapter attached), one shared by the prompt-only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rolecraft.llm.embedded import embedded_checkpoint
    from rolecraft.serve.registry import ServedCharacter

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(embedded_checkpoint()), lora).save_pretrained(tmp_path / "adapter")
    card = tmp_path / "mira.json"
    card.write_text(json.dumps(CARD))
    [plain] = discover([card])
    served = [plain, ServedCharacter(id="trained-mira", character=plain.character, adapter=tmp_path / "adapter"),
              ServedCharacter(id="other-mira", character=plain.character)]
    agents = build_agents(served, model="embedded")
    trained, untrained = agents["trained-mira"].model, agents["captain-mira"].model
    assert trained.adapter == tmp_path / "adapter" and untrained.adapter is None
    assert agents["other-mira"].model is untrained
    ask = [Message(role="user", content="Who are you?")]
    params = SamplingParams(max_tokens=8, temperature=0)
    assert run_sync(trained.generate([ask], params))[0].text != run_sync(untrained.generate([ask], params))[0].text


@pytest.mark.slow
def test_openai_client_chats_with_a_character_on_the_embedded_model(tmp_path):
    """On llama.cpp, with its tokenizer behind /tokenize: the ids transformers gives for the same text."""
    from transformers import AutoTokenizer

    from rolecraft.llm.embedded import embedded_checkpoint
    from rolecraft.llm.llamacpp import LlamaCppChatModel

    card = tmp_path / "mira.json"
    card.write_text(json.dumps(CARD))
    agents = build_agents(discover([card]), model="embedded")
    assert isinstance(agents["captain-mira"].model, LlamaCppChatModel)
    with BackgroundServer(create_app(agents)) as server:
        text = "Captain Mira <|im_start|> naïve 1841 — ahoy!"
        tokens = httpx.post(server.url.removesuffix("/v1") + "/tokenize", json={"prompt": text}, timeout=30).json()
        assert tokens["tokens"] == AutoTokenizer.from_pretrained(embedded_checkpoint())(text)["input_ids"]
        assert tokens["max_model_len"] == 8192
        back = httpx.post(server.url.removesuffix("/v1") + "/detokenize", json={"tokens": tokens["tokens"]}, timeout=30)
        assert back.json()["prompt"] == text
        client = openai.OpenAI(base_url=server.url, api_key="unused")
        assert [m.id for m in client.models.list()] == ["captain-mira"]
        messages = [{"role": "assistant", "content": "Welcome aboard, User."},
                    {"role": "user", "content": "Who are you, and what is this ship?"}]
        reply = client.chat.completions.create(model="captain-mira", messages=messages, max_tokens=20, temperature=0)
        text = reply.choices[0].message.content
        assert text.strip() and reply.usage.completion_tokens > 0
        stream = client.chat.completions.create(model="captain-mira", messages=messages, max_tokens=20,
                                                temperature=0, stream=True)
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        assert len(pieces) > 3 and "".join(pieces) == text
