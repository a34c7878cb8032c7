"""Reading the papers' own files from a user's copy of their repositories.

The `reference` protocols reproduce Character-LLM, APC and Ditto exactly, which needs their prompt
texts; rolecraft does not carry those texts, it reads them where the user keeps the papers' files:

- prompt files (`data/seed_data/prompts/*.txt` in Character-LLM's repository) as they are;
- strings that live in the papers' Python scripts (a scene's status line, APC's discriminator
  templates, Ditto's judge prompts). The script is parsed, never run: an assignment or a returned
  f-string becomes a `str.format` template whose fields are the f-string's variables.

A published data file that is still a Git LFS pointer (a clone made without git-lfs) is named as
such, with how to get the real file, instead of failing as "not valid JSON".
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError

LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"


def refuse_lfs_pointer(path: Path) -> None:
    """Raise a one-line error when `path` is a Git LFS pointer rather than the file it stands for."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return
    if not head.startswith(LFS_HEADER):
        return
    fields = dict(line.split(" ", 1) for line in head.decode("ascii", "replace").splitlines() if " " in line)
    oid, size = fields.get("oid", "?").removeprefix("sha256:")[:12], fields.get("size", "?")
    raise RolecraftError(
        f"{path} is a Git LFS pointer (object sha256 {oid}…, {size} bytes), not the data file itself",
        "fetch the real file: `git lfs install && git lfs pull` in the clone it came from, or the "
        "repository's own download link (Ditto's README links a zip of its data)",
    )


def _module(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except OSError as e:
        raise RolecraftError(f"cannot read {path} ({e.strerror})", "pass your copy of the paper's repository") from None
    except SyntaxError as e:
        raise RolecraftError(f"{path} is not a Python file ({e.msg}, line {e.lineno})", "pass the file as published") from None


def _template(node: ast.AST, where: str) -> str:
    """A string constant or an f-string as a `str.format` template ({name} for each variable)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value).replace("{", "{{").replace("}", "}}"))
            elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name) and value.format_spec is None:
                parts.append("{" + value.value.id + "}")
            else:
                raise RolecraftError(f"{where} uses an expression rolecraft does not read", "pass the file as published")
        return "".join(parts)
    raise RolecraftError(f"{where} is not a string", "pass the file as published")


def _scope(module: ast.Module, path: Path, function: str | None) -> ast.AST:
    if function is None:
        return module
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return node
    raise RolecraftError(f"{path} has no function {function}()", "pass the paper's file as published")


def assigned_template(path: Path, name: str, function: str | None = None) -> str:
    """The template assigned to `name` (first assignment, inside `function` when given)."""
    scope = _scope(_module(path), path, function)
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return _template(node.value, f"{path}: {name}")
    raise RolecraftError(f"{path} assigns no `{name}`", "pass the paper's file as published")


def returned_template(path: Path, function: str) -> str:
    """The template a function returns (APC's `fill_in_..._template` functions)."""
    scope = _scope(_module(path), path, function)
    for node in ast.walk(scope):
        if isinstance(node, ast.Return) and node.value is not None:
            return _template(node.value, f"{path}: {function}()")
    raise RolecraftError(f"{path}: {function}() returns nothing", "pass the paper's file as published")


def keyword_template(path: Path, call: str, keyword: str) -> str:
    """The string passed as `keyword=` to the first call of `call` (e.g. a judge's system prompt)."""
    for node in ast.walk(_module(path)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == call:
            for kw in node.keywords:
                if kw.arg == keyword:
                    return _template(kw.value, f"{path}: {call}({keyword}=...)")
    raise RolecraftError(f"{path} never calls {call}(..., {keyword}=...)", "pass the paper's file as published")


def assigned_literal(path: Path, name: str) -> Any:
    """A module-level literal (e.g. a dict of prompts per language), evaluated without running the file."""
    for node in _module(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    raise RolecraftError(f"{path} assigns no literal `{name}`", "pass the paper's file as published")


def find_file(root: Path, name: str, *under: str) -> Path:
    """`name` in `root` or in one of the sub-folders `under` (a repository root or the folder itself)."""
    for folder in (root, *(root / u for u in under)):
        if (folder / name).is_file():
            return folder / name
    raise RolecraftError(f"{name} is not in {root}", "pass the root of your copy of the paper's repository")
