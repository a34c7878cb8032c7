"""The server's OpenAPI description, checked against the live server on loopback with schemathesis: it
generates valid and invalid requests from /openapi.json for every operation and checks each answer —
never a 5xx, every status and body as described, valid data accepted, invalid data rejected. A
longer run with every phase (boundary values, stateful) is bench/schemathesis_serve.py (figures in
BENCHMARKS.md); tests/test_serve_errors.py keeps a regression case for each failure it found."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from rolecraft.character import Character
from rolecraft.serve import BackgroundServer, ServeSettings, build_agents, create_app
from rolecraft.serve.protocol import ChatRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest
from rolecraft.serve.registry import ServedCharacter

# Generation is a few tokens: the requests' shapes are what is being tested, not the model.
FUZZ_SETTINGS = ServeSettings(max_tokens_cap=3, max_body_bytes=256 * 1024)


def serve_tiny(tiny_model_dir, settings: ServeSettings = FUZZ_SETTINGS) -> BackgroundServer:
    served = [ServedCharacter(id=slug, character=Character(full_name=name))
              for slug, name in (("alice", "Alice Liddell"), ("bob", "Bob Stone"))]  # fmt: skip
    return BackgroundServer(create_app(build_agents(served, model=f"hf:{tiny_model_dir}", context_chars=150), settings))


@pytest.fixture(scope="module")
def live(tiny_model_dir):
    with serve_tiny(tiny_model_dir) as server:
        yield server


@pytest.fixture
def api(live):
    schema = schemathesis.openapi.from_url(live.base + "/openapi.json")
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    schema.config.phases.update(phases=["examples", "fuzzing"])  # the boundary-value phase: in the bench script
    return schema


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_generated_request_is_answered_as_described(case):
    case.call_and_validate()


def test_the_server_still_answers_afterwards_with_nothing_in_flight(live):
    health = httpx.get(live.base + "/health").json()
    assert health == {"status": "ok", "models": 2, "active": 0}
    reply = httpx.post(live.url + "/chat/completions", json={"model": "alice", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200 and reply.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_request_schemas_are_the_parsers_own_models(live):
    """The description of each request body is the pydantic model the handler parses it with; only the
    served model ids and the vocabulary's range are filled in."""
    described = httpx.get(live.base + "/openapi.json").json()["components"]["schemas"]
    for model in (ChatRequest, CompletionRequest, TokenizeRequest, DetokenizeRequest):
        own = model.model_json_schema(ref_template="#/components/schemas/{model}")
        served = described[model.__name__]
        assert set(served["properties"]) == set(own["properties"]) and served.get("required") == own.get("required")
        assert {k: v for k, v in served["properties"].items() if k not in ("model", "logit_bias", "tokens")} == {
            k: v for k, v in own["properties"].items() if k not in ("model", "logit_bias", "tokens")
        }
        assert described[model.__name__]["properties"]["model"]["anyOf" if model in (TokenizeRequest, DetokenizeRequest) else "enum"]
    assert described["DetokenizeRequest"]["properties"]["tokens"]["items"]["maximum"] == 399  # the tiny vocabulary
