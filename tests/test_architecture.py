"""The shape of the package: no import cycles, short files, one writer of step records, and a new stage
added to the build by one file and one line (the walkthrough in docs/architecture.md, run as written)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.openai_stub_server import StubServer

PACKAGE = REPO / "src" / "rolecraft"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every rolecraft module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("rolecraft"):
            out |= {t for t in [node.module, *(f"{node.module}.{a.name}" for a in node.names)] if t in known}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
    return out


def test_no_import_cycles_in_function_imports_included():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_step_records_are_written_in_one_place():
    """Only the step runner writes manifest entries."""
    writers = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if re.search(r"\.record\(\s*[\w.\"']", p.read_text()) and p.name != "workspace.py"}
    assert writers == {"pipeline/runner.py"}


def test_a_new_stage_is_one_file_and_one_line(tmp_path):
    """The walkthrough of docs/architecture.md: its file, imported as written, and its one line."""
    from rolecraft.cards import load_character
    from rolecraft.pipeline import Models, build_steps, run_build
    from rolecraft.pipeline.presets import tiny
    from rolecraft.synth.qa import QAStep

    doc = (REPO / "docs" / "architecture.md").read_text()
    walkthrough = doc[doc.index("## Adding a stage"):doc.index("## The workspace owns")]
    code, line = re.findall(r"```python\n(.*?)```", walkthrough, re.DOTALL)
    module_path = tmp_path / "word_count.py"
    module_path.write_text(code)
    spec = importlib.util.spec_from_file_location("word_count", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["word_count"] = module
    spec.loader.exec_module(module)
    assert line.strip() == "WordCountStep(),"

    character = load_character(REPO / "examples" / "mira-voss.txt")
    with StubServer(fill="Mira Voss keeps the Greywater light burning") as server:
        models = Models(teacher=f"openai:stub@{server.url}")
        steps = build_steps(tiny(), models)
        steps = steps[: [type(s) for s in steps].index(QAStep) + 1]  # the build up to the step it reads
        steps.append(eval(line.strip().rstrip(","), vars(module)))  # the registration line
        ws, runs = run_build(character, tmp_path / "ws", tiny(), models, steps=steps)
        assert runs[-1].name == "word_count" and not runs[-1].cached
        rows = ws.read("word_count", module.WordCount)
        answers = ws.read("qa", QAStep.record)
        assert [r.row for r in rows] == [a.id for a in answers] and all(r.words > 0 for r in rows)
        assert ws.entry("word_count")["status"] == "done" and ws.entry("word_count")["rows"] == len(rows)
        _, again = run_build(character, tmp_path / "ws", tiny(), models, steps=steps)
        assert all(r.cached for r in again)
