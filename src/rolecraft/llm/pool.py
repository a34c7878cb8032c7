"""The models of one run: each loaded once, behind the workspace's request cache, calls batched.

Everything in a build or an evaluation that names the same (spec, adapter) shares one model, so a
135M teacher is loaded once however many steps ask for it, and concurrent callers share batches.
"""

from __future__ import annotations

from pathlib import Path

from rolecraft.llm import load_model, parse_spec
from rolecraft.llm.base import ChatModel, adapter_digest
from rolecraft.llm.batching import Batched
from rolecraft.llm.cache import CachedModel, RequestCache


class ModelPool:
    def __init__(self, cache_path: str | Path):
        self.cache = RequestCache(cache_path)
        self.models: dict[tuple[str, str | None], Batched] = {}

    def get(self, spec: str | ChatModel, adapter: str | Path | None = None) -> Batched:
        """The model a spec names, with `adapter` where the provider applies adapters itself. A ready
        ChatModel (from Python code or a test) is used as it is."""
        if isinstance(spec, ChatModel):
            key = (f"{spec.spec}#{id(spec)}", None)
            if key not in self.models:
                self.models[key] = self.wrap(spec)
            return self.models[key]
        parse_spec(spec)  # a bad spec fails here, with its fix
        # Keyed by the adapter's weights too: an adapter retrained during the run is a new model.
        key = (spec, f"{Path(adapter).resolve()}#{adapter_digest(adapter)}" if adapter else None)
        if key not in self.models:
            self.models[key] = self.wrap(load_model(spec, adapter=adapter))
        return self.models[key]

    def wrap(self, model: ChatModel) -> Batched:
        """A ready model (a shared base's adapter view, a test double's server) behind the cache."""
        return Batched(CachedModel(model, self.cache))

    async def aclose(self) -> None:
        for model in self.models.values():
            await model.aclose()
        self.models.clear()
