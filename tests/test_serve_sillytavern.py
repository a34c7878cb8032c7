"""The server driven the way SillyTavern drives it, on the embedded model: the request bodies of its Chat
Completion "Custom (OpenAI-compatible)" source and of its Text Completion vLLM source (as its server
sends them upstream), its status check, token counting through /tokenize, logit_bias from those token
ids, swipes with `n`, token probabilities, streaming with reasoning, and each field's effect."""

from __future__ import annotations

import json

import httpx
import pytest

from rolecraft.agent import Agent
from rolecraft.serve import BackgroundServer, build_agents, create_app, discover

pytestmark = pytest.mark.slow

CARD = {"spec": "chara_card_v2", "spec_version": "2.0",
        "data": {"name": "Captain Mira", "description": "{{char}} commands the airship Kestrel.",
                 "first_mes": "Welcome aboard, {{user}}."}}  # fmt: skip
HISTORY = [{"role": "assistant", "content": "Welcome aboard, User."},
           {"role": "user", "content": "Who are you, and what is this ship?"}]  # fmt: skip


def chat_body(**fields):
    """What SillyTavern's server posts to a Custom (OpenAI-compatible) source (backends/chat-completions.js)."""
    return {"messages": HISTORY, "model": "captain-mira", "temperature": 1, "max_tokens": 10, "stream": False,
            "presence_penalty": 0, "frequency_penalty": 0, "top_p": 1, "logit_bias": {}, **fields}  # fmt: skip


def text_body(prompt: str, **fields):
    """What it posts to a vLLM Text Completion source (textgen-settings.js, filtered by VLLM_KEYS)."""
    return {"model": "captain-mira", "prompt": prompt, "max_tokens": 10, "temperature": 1, "top_p": 1, "top_k": -1,
            "min_p": 0, "repetition_penalty": 1, "frequency_penalty": 0, "presence_penalty": 0, "n": 1, "best_of": 1,
            "ignore_eos": False, "min_tokens": 0, "skip_special_tokens": True, "spaces_between_special_tokens": True,
            "stop": ["\nUser:"], "stream": False, **fields}  # fmt: skip


def events(response: httpx.Response) -> list[dict]:
    lines = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


@pytest.fixture(scope="module")
def st(tmp_path_factory):
    """The server, a client for it, and the token ids of words the tests steer with."""
    card = tmp_path_factory.mktemp("st") / "mira.json"
    card.write_text(json.dumps(CARD))
    agents = build_agents(discover([card]), model="embedded")
    chat = agents["captain-mira"]
    # The same character in Character-LLM's protocol, thinking before it speaks.
    agents["captain-mira-thinks"] = Agent(chat.character, chat.model, style="character-llm")
    with BackgroundServer(create_app(agents)) as server, httpx.Client(base_url=server.base, timeout=300) as client:
        yield client


def tokenize(client: httpx.Client, text: str) -> list[int]:
    """SillyTavern's remote token counting for vLLM: POST {server}/tokenize {model, prompt}."""
    answer = client.post("/tokenize", json={"model": "captain-mira", "prompt": text}).json()
    assert answer["count"] == len(answer["tokens"]) and answer["max_model_len"] == 8192
    return answer["tokens"]


def test_status_check_lists_the_characters(st):
    ids = [m["id"] for m in st.get("/v1/models").json()["data"]]  # both sources check GET .../v1/models
    assert ids == ["captain-mira", "captain-mira-thinks"]


def test_chat_logprobs_and_a_banned_token(st):
    greedy = st.post("/v1/chat/completions", json=chat_body(temperature=0, logprobs=True, top_logprobs=5)).json()
    [choice] = greedy["choices"]
    text, tokens = choice["message"]["content"], choice["logprobs"]["content"]
    assert text and "".join(t["token"] for t in tokens) == text  # SillyTavern rebuilds the reply from them
    for t in tokens:
        assert len(t["top_logprobs"]) == 5 and t["logprob"] <= 0 and bytes(t["bytes"]).decode() == t["token"]
        assert t["top_logprobs"][0]["logprob"] == max(a["logprob"] for a in t["top_logprobs"])
        assert t["logprob"] == pytest.approx(t["top_logprobs"][0]["logprob"])  # greedy takes the likeliest
    # logit_bias from /tokenize's ids: the greedy reply's first word never appears.
    first = tokens[0]["token"]
    [banned] = tokenize(st, first)
    biased = st.post("/v1/chat/completions", json=chat_body(temperature=0, logprobs=True, logit_bias={str(banned): -100}))
    chosen = [t["token"] for t in biased.json()["choices"][0]["logprobs"]["content"]]
    assert chosen and first not in chosen


def test_repetition_penalty_changes_a_greedy_reply(st):
    plain = st.post("/v1/chat/completions", json=chat_body(temperature=0)).json()
    # SillyTavern sends it from the source's "Additional Body Parameters" (custom_include_body).
    penalised = st.post("/v1/chat/completions", json=chat_body(temperature=0, repetition_penalty=1.5)).json()
    assert penalised["choices"][0]["message"]["content"] != plain["choices"][0]["message"]["content"]


def test_swipes_are_distinct_and_stream_by_index(st):
    ask = chat_body(n=2, seed=11, stream=True, logprobs=True, top_logprobs=2)
    chunks = events(st.post("/v1/chat/completions", json=ask))
    text = {0: "", 1: ""}
    for c in chunks:
        for choice in c["choices"]:
            piece = choice["delta"].get("content") or ""
            text[choice["index"]] += piece
            if piece:  # each piece carries its tokens' probabilities
                assert "".join(t["token"] for t in choice["logprobs"]["content"]) == piece
    whole = st.post("/v1/chat/completions", json={**ask, "stream": False}).json()["choices"]
    assert [text[0], text[1]] == [c["message"]["content"] for c in whole] and text[0] != text[1]


def test_thoughts_arrive_as_reasoning_apart_from_the_speech(st):
    # Steer the untrained embedded model into Character-LLM's thinking turns with logit_bias on its own ids.
    [speaking], [thinking] = tokenize(st, "speaking"), tokenize(st, "thinking")
    ask = chat_body(model="captain-mira-thinks", temperature=0, max_tokens=12, logit_bias={str(speaking): -100, str(thinking): 5})
    whole = st.post("/v1/chat/completions", json=ask).json()
    message = whole["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"]
    assert message["reasoning_content"] not in message["content"] and "thinking)" not in message["content"]
    chunks = events(st.post("/v1/chat/completions", json={**ask, "stream": True}))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = [d["reasoning_content"] for d in deltas if "reasoning_content" in d]
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning and not any("content" in d and "reasoning_content" in d for d in deltas)  # never mixed
    assert "\n\n".join(reasoning) == message["reasoning_content"] and content == message["content"]


def test_text_completion_the_vllm_way(st):
    prompt = "Captain Mira is the captain of the airship Kestrel.\nUser: Who are you?\nCaptain Mira:"
    count = len(tokenize(st, prompt))  # SillyTavern's token counting for the prompt it builds
    done = st.post("/v1/completions", json=text_body(prompt, temperature=0, logprobs=5)).json()
    [choice] = done["choices"]
    assert done["usage"]["prompt_tokens"] == count
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == choice["text"] and len(logprobs["tokens"]) == done["usage"]["completion_tokens"]
    assert all(len(top) <= 5 and top for top in logprobs["top_logprobs"]) and logprobs["text_offset"][0] == 0
    # Its stop strings: a stop taken from the reply cuts it there.
    stop = choice["text"].strip()[:4]
    cut = st.post("/v1/completions", json=text_body(prompt, temperature=0, stop=[stop])).json()["choices"][0]
    assert cut["finish_reason"] == "stop" and stop not in cut["text"] and choice["text"].startswith(cut["text"])
    # Swipes while streaming: SillyTavern reads choices[0].index > 0 as the other swipes.
    chunks = events(st.post("/v1/completions", json=text_body(prompt, n=2, best_of=2, seed=3, stream=True, logprobs=5)))
    texts = {0: "", 1: ""}
    for c in chunks:
        for ch in c["choices"]:
            texts[ch["index"]] += ch["text"]
            if ch["text"]:  # its token view reads top_logprobs[0] of each event
                assert ch["logprobs"]["top_logprobs"][0]
    assert texts[0] and texts[1] and texts[0] != texts[1]
