"""Shared fixtures. Everything runs offline: no hub access, no stray network."""

from __future__ import annotations

import os

os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TORCHDYNAMO_DISABLE="1",
    TOKENIZERS_PARALLELISM="false",
)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved 2-layer Llama + byte-level tokenizer with a chat template."""
    from tests.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A saved 2-layer BERT encoder with the same tiny tokenizer (for discriminators)."""
    from tests.tiny import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("reference data ../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def paper_repo():
    """A user's copy of a paper's repository (trainable-agents, Active_Passive_Constraint_Koishiday_2024,
    Ditto) under $ROLECRAFT_PAPER_REPOS, for tests that compare with the papers' own code; skipped
    when there is none."""
    root = os.environ.get("ROLECRAFT_PAPER_REPOS")

    def find(name: str) -> Path:
        path = Path(root, name) if root else None
        if path is None or not path.is_dir():
            pytest.skip(f"no copy of {name} (set ROLECRAFT_PAPER_REPOS to a folder holding the papers' repositories)")
        return path

    return find


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
