"""Self-alignment on a local Ray (2 CPUs): the same rows as in-process, and resume by shard."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolecraft.charset import load_characters
from rolecraft.pipeline import Models, run
from rolecraft.synth.selfalign import SelfAlignConfig
from rolecraft.synth.selfalign_run import SelfAlignStep
from rolecraft.synth.selfalign_shards import SHARDS, SelfAlignSummary
from rolecraft.workspace import Workspace

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures" / "selfalign"
# Sampled, not greedy: the seeds must carry over to the workers, not just the argmax.
CONFIG = SelfAlignConfig(queries=3, turns=3, eval_queries=1, shard_size=4, temperature=0.9, seed=7,
                         query_tokens=12, response_tokens=12)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, logging_level="warning", include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def in_process(tiny_model_dir, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("in-process"))
    return ws, synthesize(ws, tiny_model_dir)


def synthesize(ws: Workspace, model: Path, ray: dict | None = None) -> SelfAlignSummary:
    """The self-alignment step through the runner (which writes selfalign.jsonl), in-process or on Ray."""
    step = SelfAlignStep(CONFIG, characters=load_characters(FIXTURES / "characters"), ray=ray)
    [done] = run([step], ws, Models(teacher=f"hf:{model}"))
    return SelfAlignSummary(**done.info, rejections=done.rejections)


def test_ray_run_writes_the_same_rows_as_in_process(local_ray, in_process, tiny_model_dir, tmp_path):
    ws, local = in_process
    on_ray = Workspace(tmp_path)
    summary = synthesize(on_ray, tiny_model_dir, ray={"workers": 2})
    assert summary.backend == "ray (2 workers)" and summary.shards == 5 and summary.shards_reused == 0
    assert summary.dialogues == local.dialogues > 0 and summary.rejections == local.rejections
    for name in ("selfalign.jsonl", "selfalign-eval.jsonl"):
        assert on_ray.path(name).read_bytes() == ws.path(name).read_bytes()
    assert sorted(p.name for p in on_ray.path(SHARDS).iterdir()) == sorted(p.name for p in ws.path(SHARDS).iterdir())


def test_ray_resumes_by_shard(local_ray, in_process, tiny_model_dir, tmp_path):
    """Two shards are finished already (one of them marked): Ray runs only the other three."""
    ws, _ = in_process
    resumed = Workspace(tmp_path)
    resumed.path(SHARDS).mkdir(parents=True)
    finished = sorted(ws.path(SHARDS).iterdir())[1:3]
    for shard in finished:
        (resumed.path(SHARDS) / shard.name).write_bytes(shard.read_bytes())
    # A reused shard is read, not regenerated: a mark put into it shows up in the output.
    marked = resumed.path(SHARDS) / finished[0].name
    marked.write_text(marked.read_text().replace('"response":"', '"response":"MARK ', 1))

    summary = synthesize(resumed, tiny_model_dir, ray={"workers": 2})
    assert summary.shards_reused == 2 and summary.shards == 5
    assert resumed.path("selfalign.jsonl").read_text().count('"response":"MARK ') == 1
    expected = ws.path("selfalign.jsonl").read_text()
    assert resumed.path("selfalign.jsonl").read_text().replace('"response":"MARK ', '"response":"') == expected
