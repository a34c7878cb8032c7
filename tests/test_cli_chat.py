"""`rolecraft chat` and `rolecraft serve` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from rolecraft.character import Character
from rolecraft.cli import app
from rolecraft.serve import free_port
from rolecraft.workspace import Workspace
from tests.adapters import random_lora

CARD = {"spec": "chara_card_v2", "spec_version": "2.0",
        "data": {"name": "Captain Mira", "description": "{{char}} flies the Kestrel.", "first_mes": "Welcome aboard, {{user}}."}}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1"}


@pytest.fixture
def card(tmp_path):
    path = tmp_path / "mira.json"
    path.write_text(json.dumps(CARD))
    return path


def rolecraft(*args: str, stdin: str = "", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rolecraft", *args], input=stdin, capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_chat_reads_turns_and_commands_from_a_pipe(card, tiny_model_dir, tmp_path):
    turns = "Hello there\n/facts\n/thoughts\n/help\n/reset\n\nAnd again\n/quit\nnever answered\n"
    done = rolecraft("chat", str(card), "--model", f"hf:{tiny_model_dir}", "--no-retrieval", "--max-tokens", "6",
                     "--temperature", "1.0", "--user", "Tom", stdin=turns, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    spoken = [line for line in lines if line.startswith("Captain Mira: ")]
    # greeting, reply, greeting again after /reset, reply; nothing after /quit
    assert len(spoken) == 4 and spoken[0] == spoken[2] == "Captain Mira: Welcome aboard, Tom."
    assert all(len(line) > len("Captain Mira: ") for line in spoken)
    assert "(no facts were retrieved for the last reply)" in lines
    assert "(no inner thoughts in the last reply)" in lines
    assert any(line.startswith("commands: /reset") for line in lines)


def test_chat_with_an_unknown_character_is_one_clear_error(tmp_path):
    done = rolecraft("chat", "Nobody In Particular", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("rolecraft: error: 'Nobody In Particular' is neither a file")
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_serve_command_serves_the_api_and_the_page(card, tiny_model_dir, tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rolecraft", "serve", str(card), "--model", f"hf:{tiny_model_dir}",
                               "--port", str(port)], env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rolecraft serve did not come up"
            time.sleep(0.25)
        assert [m["id"] for m in httpx.get(base + "/v1/models").json()["data"]] == ["captain-mira"]
        assert "<title>rolecraft chat</title>" in httpx.get(base + "/").text
        reply = httpx.post(base + "/v1/chat/completions", timeout=60,
                           json={"model": "captain-mira", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
                                 "seed": 0})  # the server draws a fresh seed otherwise, which may sample EOS early
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 4
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_vllm_command_lists_every_trained_adapter(tmp_path, tiny_model_dir):
    for seed, name in ((1, "Alice Liddell"), (2, "Bob Stone")):
        ws = Workspace.for_character(Character(full_name=name), tmp_path / "ws" / Character(full_name=name).slug)
        if seed == 1:
            random_lora(tiny_model_dir, ws.path("adapters/sft"), seed=seed, rank=32)
    result = CliRunner().invoke(app, ["serve", "--workspace", str(tmp_path / "ws"), "--model", "hf:Qwen/Qwen2.5-7B-Instruct",
                                      "--vllm-command"])
    assert result.exit_code == 0, result.output
    adapter = (tmp_path / "ws" / "alice-liddell" / "adapters" / "sft").resolve()
    assert result.output.strip() == (
        f"vllm serve Qwen/Qwen2.5-7B-Instruct --enable-lora --max-lora-rank 32 --max-loras 1 --lora-modules alice-liddell={adapter}"
    )
