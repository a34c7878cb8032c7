"""A short soak on the tiny model: concurrent streaming clients, some hanging up mid-stream — no error,
no task left behind, the server answers afterwards (bench/soak_serve.py runs minutes on the embedded
model and reports memory)."""

from __future__ import annotations

from rolecraft.character import Character
from rolecraft.llm import run_sync
from rolecraft.serve import build_agents, create_app
from rolecraft.serve.registry import ServedCharacter
from tests.serve_soak import soak


def test_concurrent_streams_with_hang_ups_leave_nothing_behind(tiny_model_dir):
    served = [ServedCharacter(id="alice", character=Character(full_name="Alice Liddell"))]
    app = create_app(build_agents(served, model=f"hf:{tiny_model_dir}", context_chars=300))
    result = run_sync(soak(app, "alice", clients=8, seconds=4, hang_up_every=3, max_tokens=(4, 24)))
    assert result.errors == [] and result.answers_afterwards
    assert result.completed > 0 and result.disconnected > 0
    assert result.completed + result.disconnected == result.streams  # every stream ended one way or the other
    assert result.tasks_after == result.tasks_before
