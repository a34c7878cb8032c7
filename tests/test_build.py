"""`rolecraft build` end to end on tiny models: killed mid-way, resumed, then a no-op rerun.

The teacher and judge are a real OpenAI-compatible server on loopback (tests/openai_stub_server.py)
answering schema-valid JSON about the character; the student is the tiny Llama and the
discriminators a tiny BERT, so every stage trains and generates for real in a couple of minutes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_from_disk

from tests.conftest import REPO
from tests.openai_stub_server import StubServer

EXAMPLE = REPO / "examples" / "mira-voss.txt"
FILL = "Mira Voss keeps the Greywater light burning through every storm"


def build_command(ws: Path, url: str, student: Path, encoder: Path) -> list[str]:
    teacher = f"openai:stub@{url}"
    return [sys.executable, "-m", "rolecraft", "build", str(EXAMPLE), "--workspace", str(ws), "--preset", "tiny",
            "--teacher", teacher, "--judge", teacher, "--student", f"hf:{student}", "--discriminator", str(encoder)]


def cached_calls(ws: Path) -> int:
    path = ws / "cache.sqlite"
    if not path.exists():
        return 0
    try:
        return sqlite3.connect(path).execute("SELECT count(*) FROM calls").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def bodies(server: StubServer) -> list[str]:
    return [json.dumps(s.body, sort_keys=True) for s in server.state.log if s.status == 200]


@pytest.mark.slow
def test_build_resumes_after_kill_without_repeating_calls_and_then_does_nothing(tmp_path, tiny_model_dir, tiny_encoder_dir):
    ws = tmp_path / "mira"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    with StubServer(fill=FILL) as teacher:
        command = build_command(ws, teacher.url, tiny_model_dir, tiny_encoder_dir)
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while cached_calls(ws) < 25 and child.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        before_kill, cached_at_kill = bodies(teacher), cached_calls(ws)
        assert 25 <= cached_at_kill, "the build should have been killed during synthesis"

        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        # One progress display, ours: no third-party bar (tqdm's "| 12/49 [00:01<00:00, 9.1it/s]") or warning
        # on the terminal; the libraries' lines are in the workspace's log instead.
        terminal = resumed.stdout + resumed.stderr
        assert not re.search(r"\d+%\||it/s\]|examples/s\]|Warning|warnings\.warn|^\[transformers\]", terminal, re.M), terminal
        assert "training (SFT)" in terminal
        # The summary table keeps one line per step on an 80-column terminal (no wrapped reasons).
        table_rows = [line for line in terminal.splitlines() if line.startswith("│")]
        assert table_rows and all(line.split("│")[1].strip() for line in table_rows), terminal
        assert "sft: done" in (ws / "logs" / "rolecraft.log").read_text()
        after = bodies(teacher)[len(before_kill):]
        repeated = set(after) & set(before_kill)
        # Only calls answered but not yet stored when the process died may be asked again.
        assert len(repeated) <= len(before_kill) - cached_at_kill

        manifest = json.loads((ws / "manifest.json").read_text())["steps"]
        for step in ("statements", "probes", "statement_queries", "qa", "boundary", "sft", "relevance_contrasts",
                     "nli_contrasts", "discriminators", "evaluation", "export"):
            assert manifest[step]["status"] == "done", step
        assert manifest["qa"]["rows"] > 0 and manifest["boundary"]["rows"] > 0 and manifest["probes"]["rows"] > 0
        # Replies were sampled and APC-scored; whether a pair clears the margin depends on the tiny
        # classifiers, which barely separate replies, so DPO may say why it did not train.
        assert manifest["preference"]["info"]["contexts"] > 0
        assert manifest["dpo"]["status"] == "done" or manifest["dpo"]["skipped"] == manifest["preference"]["skipped"]
        for path in ("adapters/sft/adapter_config.json", "eval/build/report.md", "eval/build/results.json",
                     "export/mira-voss.v2.png", "export/mira-voss.v3.json", "export/datasets/sft/dataset_info.json"):
            assert (ws / path).exists(), path
        card = json.loads((ws / "export/mira-voss.v3.json").read_text())
        assert card["data"]["extensions"]["rolecraft"]["base_model"] == f"hf:{tiny_model_dir}"
        assert Path(card["data"]["extensions"]["rolecraft"]["adapter"]).exists()

        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "Nothing to do" in again.stderr
        assert bodies(teacher)[len(before_kill) + len(after):] == []

        # Asking for self-aligned dialogues keeps the synthesis and re-trains from SFT on; the steps that
        # do not read the SFT adapter (the discriminators' data and training) are not run again at all.
        earlier = bodies(teacher)
        aligned = subprocess.run([*command, "--selfalign"], env=env, capture_output=True, text=True, timeout=900)
        assert aligned.returncode == 0, aligned.stderr[-3000:]
        assert not set(bodies(teacher)[len(earlier):]) & set(earlier), "a stored call was asked again"
        before, manifest = manifest, json.loads((ws / "manifest.json").read_text())["steps"]
        assert manifest["selfalign"]["info"]["dialogues"] == 2  # tiny: 4 questions, 2 per dialogue
        for step in ("statements", "probes", "qa", "boundary", "relevance_contrasts", "nli_contrasts", "discriminators"):
            assert manifest[step] == before[step], step
        assert manifest["sft"]["updated"] >= before["sft"]["updated"] and manifest["sft"] != before["sft"]
        sources = load_from_disk(str(ws / "export/datasets/sft"))["source"]
        assert sum("-train-" in s for s in sources) == 2 and len(sources) > 2


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty"), (b"\x00\x01\x02binary" * 50, "binary data"),
     (b'{"spec": "chara_card_v2", "data": {"description": "no name"}}', "name")],
)
def test_build_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, content, message):
    source = tmp_path / "input.json"
    source.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "rolecraft", "build", str(source), "--workspace", str(tmp_path / "ws")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ws").exists()


def test_without_faithfulness_rows_the_build_goes_on_without_apc(tmp_path):
    """A teacher too weak to write usable queries leaves no relevance/NLI rows: the discriminators,
    preference and DPO steps say why they did nothing, stale classifiers are removed, and evaluation
    skips APC."""
    from rolecraft.cards import load_character
    from rolecraft.pipeline import Models, run
    from rolecraft.pipeline.presets import tiny
    from rolecraft.synth.nli import NLILabelsStep
    from rolecraft.synth.preference import PreferenceStep
    from rolecraft.synth.queries import QueriesStep
    from rolecraft.synth.relevance import RelevanceStep
    from rolecraft.train.discriminators import DiscriminatorsStep
    from rolecraft.train.dpo import DPOStep
    from rolecraft.workspace import Workspace

    ws = Workspace.for_character(load_character(EXAMPLE), tmp_path / "ws")
    for step in (QueriesStep, RelevanceStep, NLILabelsStep):  # the data steps ran and kept nothing
        ws.write(step.name, [])
        ws.record(step.name, status="done", fingerprint="empty")
    stale = ws.discriminator_dir("nli")
    stale.mkdir(parents=True)
    preset = tiny()

    runs = run([DiscriminatorsStep(preset.discriminators), PreferenceStep(preset.preference), DPOStep(preset.dpo_config)],
               ws, Models())
    assert [r.skipped for r in runs] == ["the teacher wrote no usable relevance or nli rows",
                                         "no APC discriminators to score replies with",
                                         "no APC discriminators to score replies with"]
    assert not stale.exists() and not ws.has_discriminators()
    assert [ws.entry(r.name)["status"] for r in runs] == ["skipped"] * 3
