"""The install is pinned: the README's commands and CI (scripts/test.sh, run by .ci/run) install through
constraints.txt, which pins every dependency pyproject.toml names, and pins the CPU torch."""

from __future__ import annotations

import re

import tomllib

from tests.conftest import REPO


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[canonical(name)] = version
    return out


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("rolecraft[")]
    return {canonical(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def test_every_dependency_is_pinned():
    pinned = pins()
    assert not requirement_names() - set(pinned), "run scripts/lock.sh after adding a dependency"
    assert pinned["torch"].startswith("2.13.0") and not any(name.startswith("nvidia-") for name in pinned)


def test_the_readme_and_ci_install_through_the_constraints():
    readme = (REPO / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line.startswith("pip install"))
    assert first.count("pip install -c constraints.txt") == 2 and first.endswith("rolecraft build examples/mira-voss.txt")
    test_script = (REPO / "scripts" / "test.sh").read_text()
    installs = [line for line in test_script.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    assert "scripts/lock.sh" in readme
