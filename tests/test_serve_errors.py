"""Malformed requests get the promised status and an OpenAI-style error body; the server lives on."""

from __future__ import annotations

import json

import httpx
import pytest

from rolecraft.character import Character
from rolecraft.serve import BackgroundServer, ServeSettings, build_agents, create_app
from rolecraft.serve.registry import ServedCharacter

LIMIT = 64 * 1024
GOOD = {"model": "alice", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    served = [ServedCharacter(id="alice", character=Character(full_name="Alice Liddell"))]
    agents = build_agents(served, model=f"hf:{tiny_model_dir}", context_chars=1000)
    with BackgroundServer(create_app(agents, ServeSettings(max_body_bytes=LIMIT))) as running:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            yield client


def with_(**changes):
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


CASES = [
    ("invalid JSON", "/chat/completions", b'{"model": "alice", "messages": [', 400),
    ("not UTF-8", "/chat/completions", b'{"model": "\xff\xfe"}', 400),
    ("JSON but not an object", "/chat/completions", b'["model", "alice"]', 400),
    ("missing messages", "/chat/completions", with_(messages=...), 400),
    ("missing model", "/chat/completions", with_(model=...), 400),
    ("messages not a list", "/chat/completions", with_(messages="Hello"), 400),
    ("message not an object", "/chat/completions", with_(messages=["Hello"]), 400),
    ("content of the wrong type", "/chat/completions", with_(messages=[{"role": "user", "content": 5}]), 400),
    ("max_tokens not a number", "/chat/completions", with_(max_tokens="many"), 400),
    ("temperature not a number", "/chat/completions", with_(temperature="hot"), 400),
    ("stream not a boolean", "/chat/completions", with_(stream="maybe"), 400),
    ("unknown model", "/chat/completions", with_(model="nobody"), 404),
    ("huge body", "/chat/completions", with_(messages=[{"role": "user", "content": "x" * (2 * LIMIT)}]), 413),
    ("no messages", "/chat/completions", with_(messages=[]), 422),
    ("negative max_tokens", "/chat/completions", with_(max_tokens=-5), 422),
    ("zero max_tokens", "/chat/completions", with_(max_tokens=0), 422),
    ("temperature too high", "/chat/completions", with_(temperature=7.5), 422),
    ("negative temperature", "/chat/completions", with_(temperature=-1), 422),
    ("top_p of zero", "/chat/completions", with_(top_p=0), 422),
    ("unknown role", "/chat/completions", with_(messages=[{"role": "wizard", "content": "hi"}]), 422),
    ("too many choices", "/chat/completions", with_(n=17), 422),
    ("a number as a string", "/chat/completions", with_(max_tokens="3"), 400),  # strict, as the schema says
    ("NaN is not JSON", "/chat/completions", b'{"model": "alice", "messages": [], "temperature": NaN}', 400),
    ("nesting too deep to parse", "/chat/completions", b"[" * 20_000, 400),
    ("logit_bias key not a token id", "/chat/completions", with_(logit_bias={"hello": -100}), 422),
    ("logit_bias beyond -100", "/chat/completions", with_(logit_bias={"5": -500}), 422),
    ("logit_bias token outside the vocabulary", "/chat/completions", with_(logit_bias={"123456": -100}), 422),
    ("logprobs not a boolean in chat", "/chat/completions", with_(logprobs=5), 400),
    ("too many top_logprobs", "/chat/completions", with_(logprobs=True, top_logprobs=21), 422),
    ("repetition_penalty of zero", "/chat/completions", with_(repetition_penalty=0), 422),
    ("too many stop strings", "/chat/completions", with_(stop=[f"s{i}" for i in range(65)]), 422),
    ("completion without prompt", "/completions", with_(messages=...), 400),
    ("completion with a negative max_tokens", "/completions", json.dumps({"model": "alice", "prompt": "x", "max_tokens": -1}).encode(), 422),
    ("tokenize with neither prompt nor messages", "/tokenize", b'{"model": "alice"}', 422),
    ("tokenize with both prompt and messages", "/tokenize", json.dumps({"prompt": "x", "messages": GOOD["messages"]}).encode(), 422),
    ("tokenize for an unknown model", "/tokenize", b'{"model": "nobody", "prompt": "x"}', 404),
    ("detokenize an id outside the vocabulary", "/detokenize", b'{"tokens": [1, 999999]}', 422),
    ("detokenize a negative id", "/detokenize", b'{"tokens": [-1]}', 422),
    # Found by schemathesis (bench/schemathesis_serve.py), each was a 500 or a mismatch with the schema:
    ("tokenize an empty conversation", "/tokenize", b'{"messages": []}', 422),  # was a 500
    ("repetition_penalty small enough to overflow", "/chat/completions", with_(repetition_penalty=1e-300), 422),  # was a 500
    ("tokenize with messages null and no prompt", "/tokenize", b'{"messages": null}', 422),
    ("completion with an empty list of prompts", "/completions", b'{"model": "alice", "prompt": []}', 422),
]


@pytest.mark.parametrize("what,path,body,status", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_its_status_and_the_server_still_answers(server, what, path, body, status):
    response = server.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] in ("invalid_request_error",)
    # The next good request is served as if nothing happened.
    assert server.post("/chat/completions", json=GOOD).status_code == 200


def test_a_huge_body_without_content_length_is_cut_off(server):
    def chunks():
        for _ in range(2 * LIMIT // 4096):
            yield b"x" * 4096

    response = server.post("/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert server.get("/models").status_code == 200


def test_unknown_routes_and_methods_answer_in_the_same_shape(server):
    for response, status in ((server.get("/nowhere"), 404), (server.get("/chat/completions"), 405)):
        assert response.status_code == status and response.json()["error"]["message"]
    assert server.patch("/models").headers["allow"] == "GET"  # 405 says what is allowed (RFC 9110)
    assert server.get("/models").json()["data"][0]["id"] == "alice"


def test_whole_numbers_written_as_floats_are_integers(server):
    """JSON Schema counts 2.0 as an integer (schemathesis sent it); so does the server."""
    body = {**GOOD, "n": 2.0, "max_tokens": 3.0, "seed": 7.0}
    response = server.post("/chat/completions", json=body)
    assert response.status_code == 200 and len(response.json()["choices"]) == 2
    assert server.post("/chat/completions", json={**GOOD, "n": 2.5}).status_code == 400


def test_a_reply_with_every_token_banned_ends_instead_of_failing(server):
    """Sampling from nothing but -inf was a 500 (NaN probabilities); now the reply simply ends."""
    ban_all = {str(i): -100 for i in range(400)}
    response = server.post("/chat/completions", json={**GOOD, "temperature": 1.0, "logit_bias": ban_all})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == ""


def test_tokenize_takes_a_prompt_next_to_null_messages(server):
    response = server.post("/tokenize", json={"model": "alice", "prompt": "Alice", "messages": None})
    assert response.status_code == 200 and response.json()["count"] >= 1


def test_the_description_says_what_the_server_checks(server):
    """What the handlers check is in /openapi.json: token ids within the vocabulary, as JSON writes numbers
    (pydantic's own schema let any key through), and each streamed event."""
    import re

    doc = server.get(server.base_url.copy_with(path="/openapi.json")).json()
    chat = doc["components"]["schemas"]["ChatRequest"]["properties"]["logit_bias"]["anyOf"][0]
    ids = re.compile(chat["propertyNames"]["pattern"])
    assert ids.match("0") and ids.match("399") and not any(ids.match(k) for k in ("400", "007", "x", "-1"))
    assert chat["additionalProperties"] == {"type": "number", "minimum": -100.0, "maximum": 100.0}
    events = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    assert events["schema"]["required"] == ["data"]
    prompt = doc["components"]["schemas"]["CompletionRequest"]["properties"]["prompt"]["anyOf"]
    assert {"minLength": 1, "type": "string"} in prompt and any(b.get("minItems") == 1 for b in prompt)

    def keywords(node):
        if isinstance(node, dict):
            yield from node
            for value in node.values():
                yield from keywords(value)
        elif isinstance(node, list):
            for value in node:
                yield from keywords(value)

    # pydantic once wrote bounds as unknown "ge"/"le" keywords that no validator reads.
    assert not {"ge", "le", "gt", "lt"} & set(keywords(doc["components"]))
