"""The `openai:` backend against a real OpenAI-compatible server on loopback (tests/openai_stub_server.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel

from rolecraft.errors import RolecraftError
from rolecraft.llm import Message, SamplingParams, load_model, run_sync
from rolecraft.llm.cache import CachedModel, RequestCache, request_key
from rolecraft.llm.openai_compat import OpenAIChatModel
from tests.openai_stub_server import StubServer, free_port

REPO = Path(__file__).resolve().parents[1]
GREEDY = SamplingParams(max_tokens=32, temperature=0.0)


@pytest.fixture
def serve():
    """Start stub servers with given settings; all are stopped after the test."""
    servers: list[StubServer] = []

    def start(**config) -> StubServer:
        servers.append(StubServer(**config).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def ask(text: str) -> list[Message]:
    return [Message(role="system", content="You are terse."), Message(role="user", content=text)]


def test_chat_sends_sampling_params_and_reads_usage(serve):
    server = serve()
    model = load_model(f"openai:stub-model@{server.url}")
    params = SamplingParams(max_tokens=4, temperature=0.5, top_p=0.9, seed=11, stop=["never"])
    short, full = run_sync(model.generate([ask("one two three four five"), ask("hi")], params))

    assert short.text == "echo: one two three" and short.finish_reason == "length"
    assert full.text.startswith("echo: hi ") and full.finish_reason == "stop"
    assert (full.completion_tokens, short.completion_tokens) == (3, 4)
    assert full.prompt_tokens > 0 and short.prompt_tokens > full.prompt_tokens
    body = server.state.log[0].body
    assert body["model"] == "stub-model" and body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        4, 0.5, 0.9, 11, ["never"]
    )
    # The seed reaches the server: another seed gives another sampled answer, the same seed the same.
    again = run_sync(model.generate([ask("hi")], params))[0]
    other = run_sync(model.generate([ask("hi")], params.model_copy(update={"seed": 12})))[0]
    assert again.text == full.text and other.text != full.text


def test_missing_usage_counts_zero_tokens(serve):
    server = serve(usage=False)
    completion = run_sync(OpenAIChatModel("m", base_url=server.url).generate([ask("hi")], GREEDY))[0]
    assert completion.text.startswith("echo: hi") and completion.prompt_tokens == completion.completion_tokens == 0


def test_complete_uses_the_completions_endpoint(serve):
    server = serve()
    model = OpenAIChatModel("m", base_url=server.url)
    done = run_sync(model.complete(["Once upon a time", "Alice said"], SamplingParams(max_tokens=3, temperature=0)))
    assert [c.text for c in done] == ["echo: Once upon", "echo: Alice said"]
    assert [c.finish_reason for c in done] == ["length", "length"]
    assert [s.path for s in server.state.log] == ["/v1/completions"] * 2
    assert server.state.log[0].body["prompt"] == "Once upon a time"


class Scene(BaseModel):
    location: str
    people: list[str]
    hour: int


def test_schema_is_passed_as_json_schema_response_format(serve):
    server = serve()
    schema = Scene.model_json_schema()
    for strict in (False, True):
        model = OpenAIChatModel("m", base_url=server.url, strict_schema=strict)
        completion = run_sync(model.generate([ask("a scene in the garden")], GREEDY, schema=schema))[0]
        assert Scene.model_validate_json(completion.text).people
        sent = server.state.log[-1].body["response_format"]
        assert sent == {"type": "json_schema", "json_schema": {"name": "Scene", "schema": schema, "strict": strict}}


def test_429_and_500_are_retried_until_the_answer_comes(serve):
    server = serve(faults=["429", "500", "429"], retry_after_ms=20)
    model = OpenAIChatModel("m", base_url=server.url, max_retries=5)
    completion = run_sync(model.generate([ask("retry me")], GREEDY))[0]
    assert server.state.statuses() == [429, 500, 429, 200]
    assert len({json.dumps(s.body, sort_keys=True) for s in server.state.log}) == 1  # the same request
    assert completion.text.startswith("echo: retry me")


def test_dropped_connections_and_timeouts_are_retried_with_growing_backoff(serve):
    server = serve(faults=["drop", "hang"], hang_seconds=0.8)
    model = OpenAIChatModel("m", base_url=server.url, timeout=0.5, max_retries=3)
    completion = run_sync(model.generate([ask("are you there")], GREEDY))[0]
    assert completion.text.startswith("echo: are you there")
    assert server.state.statuses()[0] == 599 and server.state.statuses()[-1] == 200
    first, second, third = (s.arrived for s in server.state.log)
    # Backoff without Retry-After is exponential with jitter: ~0.5 s, then ~1 s (after the 0.5 s timeout).
    assert 0.3 < second - first < third - second - 0.5


def test_exhausted_retries_raise_one_line_without_the_key(serve):
    server = serve(faults=["500"] * 3, retry_after_ms=1)
    model = OpenAIChatModel("m", base_url=server.url, api_key="sk-secret-123456", max_retries=2)
    with pytest.raises(RolecraftError) as caught:
        run_sync(model.generate([ask("x")], GREEDY))
    message = str(caught.value)
    assert f"{server.url} failed with HTTP 500 after 2 retries" in message and "\n" not in message
    assert "sk-secret" not in message and "sk-secret" not in json.dumps(model.identity()) + model.spec
    assert len(server.state.log) == 3


def test_concurrency_stays_within_the_limit_and_uses_it(serve):
    server = serve(latency=0.05, max_concurrency=4, over_cap="reject")
    model = OpenAIChatModel("m", base_url=server.url, concurrency=4)
    done = run_sync(model.generate([ask(f"question {i}") for i in range(24)], GREEDY))
    assert [c.text.split()[2] for c in done] == [str(i) for i in range(24)]
    assert server.state.peak_in_flight == 4 and 429 not in server.state.statuses()


def test_server_over_its_cap_answers_429_and_every_request_still_succeeds(serve):
    server = serve(latency=0.05, max_concurrency=2, over_cap="reject")
    model = OpenAIChatModel("m", base_url=server.url, concurrency=3)
    done = run_sync(model.generate([ask(f"question {i}") for i in range(6)], GREEDY))
    assert [c.text.split()[2] for c in done] == [str(i) for i in range(6)]
    assert 429 in server.state.statuses() and server.state.statuses().count(200) == 6


def test_a_few_more_in_flight_than_a_queueing_servers_cap_keep_its_slots_full(serve):
    """The user's setting for servers that queue (vLLM, llama.cpp, TGI): the next request is already
    waiting when a slot frees, the server still serves at most its cap, answers keep their order."""
    server = serve(latency=0.05, max_concurrency=4, over_cap="queue")
    model = OpenAIChatModel("m", base_url=server.url, concurrency=6)
    done = run_sync(model.generate([ask(f"question {i}") for i in range(24)], GREEDY))
    assert [c.text.split()[2] for c in done] == [str(i) for i in range(24)]
    state = server.state
    assert (state.peak_in_flight, state.peak_serving, state.served) == (6, 4, 24) and 429 not in state.statuses()
    assert state.busy_seconds >= 24 * 0.05  # the server's own count of slot time


def test_concurrency_comes_from_the_environment_when_not_given(monkeypatch):
    url = "http://127.0.0.1:1/v1"
    assert OpenAIChatModel("m", base_url=url).concurrency == 16
    monkeypatch.setenv("ROLECRAFT_OPENAI_CONCURRENCY", "40")
    assert load_model(f"openai:m@{url}").concurrency == 40
    assert OpenAIChatModel("m", base_url=url, concurrency=3).concurrency == 3
    monkeypatch.setenv("ROLECRAFT_OPENAI_CONCURRENCY", "lots")
    with pytest.raises(RolecraftError, match="ROLECRAFT_OPENAI_CONCURRENCY='lots' is not a positive whole number"):
        OpenAIChatModel("m", base_url=url)


def test_unreachable_server_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}/v1"
    model = load_model(f"openai:m@{url}", max_retries=1)
    with pytest.raises(RolecraftError) as caught:
        run_sync(model.generate([ask("x")], GREEDY))
    assert str(caught.value) == (
        f"cannot reach {url} (connection refused) — start the server or pass openai:NAME@URL / OPENAI_BASE_URL"
    )


def test_wrong_key_and_wrong_path_are_explained(serve):
    server = serve(api_key="server-key-42")
    good = OpenAIChatModel("m", base_url=server.url, api_key="server-key-42")
    assert run_sync(good.generate([ask("hi")], GREEDY))[0].text.startswith("echo: hi")

    with pytest.raises(RolecraftError, match=r"refused the API key \(HTTP 401\)") as caught:
        run_sync(OpenAIChatModel("m", base_url=server.url, api_key="wrong-key-777").generate([ask("hi")], GREEDY))
    assert "wrong-key-777" not in str(caught.value)

    no_v1 = server.url.removesuffix("/v1")
    with pytest.raises(RolecraftError, match="that the URL ends in /v1"):
        run_sync(OpenAIChatModel("m", base_url=no_v1, api_key="server-key-42").generate([ask("hi")], GREEDY))


def test_spec_options_and_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env-host:1/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000")
    from_env = load_model("openai:gpt-x")
    assert from_env.identity() == {"provider": "openai", "name": "gpt-x", "base_url": "http://env-host:1/v1"}
    assert load_model("openai:q@http://spec:2/v1").base_url == "http://spec:2/v1"
    assert load_model("openai:q@http://spec:2/v1", base_url="http://opt:3/v1").base_url == "http://opt:3/v1"
    assert load_model("openai:q@http://spec:2/v1").spec == "openai:q@http://spec:2/v1"
    assert "sk-from-env" not in json.dumps(from_env.identity()) + from_env.spec + repr(from_env)
    with pytest.raises(RolecraftError, match="not a server URL"):
        load_model("openai:q@localhost:8000/v1")

    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(RolecraftError, match="set OPENAI_API_KEY"):
        load_model("openai:gpt-x")
    assert load_model("openai:q@http://127.0.0.1:8000/v1")._api_key == "EMPTY"


def test_one_model_serves_several_event_loops(serve):
    """Sync callers use run_sync once per stage: each call runs in a fresh event loop."""
    server = serve()
    model = OpenAIChatModel("m", base_url=server.url)
    first = run_sync(model.generate([ask("one")], GREEDY))[0]
    second = run_sync(model.generate([ask("two")], GREEDY))[0]
    assert (first.text.split()[1], second.text.split()[1]) == ("one", "two")


RUN_BATCH = """
import asyncio, json, sys
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.cache import CachedModel, RequestCache
from rolecraft.llm.openai_compat import OpenAIChatModel

url, cache_path, out_path = sys.argv[1:]
model = CachedModel(OpenAIChatModel("m", base_url=url, concurrency=4), RequestCache(cache_path))
conversations = [[Message(role="user", content=f"question {i}")] for i in range(40)]
params = SamplingParams(max_tokens=16, temperature=0.8, seed=7)
done = asyncio.run(model.generate(conversations, params))
json.dump([c.text for c in done], open(out_path, "w"))
"""


def cached_keys(path: Path) -> set[str]:
    try:
        with sqlite3.connect(path) as db:
            return {key for (key,) in db.execute("SELECT key FROM calls")}
    except sqlite3.OperationalError:  # not created yet
        return set()


@pytest.mark.slow
def test_killed_batch_resumes_without_repeating_finished_requests(serve, tmp_path):
    server = serve(latency=0.15)
    cache, out = tmp_path / "calls.sqlite", tmp_path / "out.json"
    command = [sys.executable, "-c", RUN_BATCH, server.url, str(cache), str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    first = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 20
    while len(cached_keys(cache)) < 8 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(0.2)  # let requests already on the wire reach the server's log
    finished = cached_keys(cache)
    assert 8 <= len(finished) < 40 and not out.exists()
    sent_before_kill = len(server.state.log)

    subprocess.run(command, env=env, check=True, timeout=60)
    resumed = json.loads(out.read_text())

    params = SamplingParams(max_tokens=16, temperature=0.8, seed=7)
    model = OpenAIChatModel("m", base_url=server.url)
    conversations = [[Message(role="user", content=f"question {i}")] for i in range(40)]
    keys = [request_key(model.identity(), "chat", [m.model_dump() for m in c], params, None) for c in conversations]
    sent = Counter(s.body["messages"][-1]["content"] for s in server.state.log)
    assert [sent[f"question {i}"] for i, key in enumerate(keys) if key in finished] == [1] * len(finished)
    assert all(sent[f"question {i}"] >= 1 for i in range(40))
    assert len(server.state.log) - sent_before_kill == 40 - len(finished)

    server.state.config.latency = 0.0  # the reference run need not wait
    uninterrupted = CachedModel(model, RequestCache(tmp_path / "fresh.sqlite"))
    assert resumed == [c.text for c in run_sync(uninterrupted.generate(conversations, params))]
