"""The process's one OpenMP thread: llama.cpp's decoding, torch's training steps and the sentence encoder
all compute there, so libgomp never manages more threads than one team (see rolecraft.compute)."""

from __future__ import annotations

import threading

from rolecraft.cards import load_character
from rolecraft.compute import on_compute_thread
from rolecraft.pipeline import Models, run
from rolecraft.step import Context, Output, Step
from rolecraft.workspace import Workspace
from tests.test_build import EXAMPLE


def test_work_from_any_thread_runs_on_one_thread_and_may_nest():
    seen: list[int] = []

    def where() -> int:
        return on_compute_thread(threading.get_ident)  # nested: runs at once, no deadlock

    callers = [threading.Thread(target=lambda: seen.append(on_compute_thread(where))) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    seen.append(on_compute_thread(where))
    assert len(seen) == 4 and len(set(seen)) == 1 and seen[0] != threading.get_ident()


class _Where(Step):
    name = "where"

    async def run(self, ctx: Context) -> Output:
        return Output(info={"thread": threading.get_ident()})


class _Trains(_Where):
    name = "trains"
    trains = True


def test_the_runner_trains_on_the_compute_thread_and_generates_on_its_own(tmp_path):
    ws = Workspace.for_character(load_character(EXAMPLE), tmp_path / "ws")
    generating, training = run([_Where(), _Trains()], ws, Models())
    compute = on_compute_thread(threading.get_ident)
    assert training.info["thread"] == compute != generating.info["thread"]
