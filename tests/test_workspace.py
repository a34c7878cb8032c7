"""Workspace files: atomic JSONL, typed reads, manifest entries, clear errors."""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.workspace import Workspace, default_workspace, write_jsonl


class Row(BaseModel):
    n: int
    text: str


def test_stage_round_trip_and_manifest(tmp_path):
    ws = Workspace.for_character(Character(full_name="Alice Liddell"), tmp_path / "alice")
    ws.write("scenes", [Row(n=i, text="é") for i in range(3)])
    assert ws.read("scenes", Row) == [Row(n=i, text="é") for i in range(3)]
    ws.record("scenes", status="running")
    ws.record("scenes", status="done", calls=3, tokens=10)  # an entry is replaced whole
    assert ws.entry("scenes") | {"updated": None} == {"status": "done", "calls": 3, "tokens": 10, "updated": None}
    assert ws.character().full_name == "Alice Liddell"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [Row(n=1, text="old")])

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_jsonl(path, [Row(n=2, text="new")])
    assert path.read_text() == '{"n":1,"text":"old"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]  # no temp file left behind


def test_missing_stage_and_bad_lines_name_the_fix(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(RolecraftError, match="step 'scenes' has not run"):
        ws.read("scenes")
    (tmp_path / "scenes.jsonl").write_text('{"n": 1, "text": "a"}\n{broken\n')
    with pytest.raises(RolecraftError, match="scenes.jsonl:2 is not valid JSON"):
        ws.read("scenes", Row)
    with pytest.raises(RolecraftError, match="not a rolecraft workspace"):
        ws.character()


def test_default_workspace_is_named_after_the_character(monkeypatch):
    monkeypatch.delenv("ROLECRAFT_WORKSPACES", raising=False)
    assert str(default_workspace(Character(full_name="Komeiji Koishi"))) == "workspaces/komeiji-koishi"
