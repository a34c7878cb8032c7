"""One progress display on the terminal: ours. Unless `--verbose`, third-party progress bars are off and
the libraries' log lines and Python warnings go to the workspace's `logs/rolecraft.log`, not stderr.

The libraries (transformers, datasets, torch ...) attach their own stderr handler when they are first
imported, which in rolecraft is lazily, deep inside a step. `quiet()` therefore watches those imports
and, as each finishes, hands the library's logger over to the root logger, whose only handler is the
log file (buffered until a workspace names it).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LIBRARIES = ("transformers", "datasets", "huggingface_hub", "torch", "trl", "peft", "accelerate", "llama_cpp",
             "onnxruntime", "ray", "vllm", "httpx", "outlines")

# Log lines wait here until a workspace gives them a file; a short command that never opens one drops them.
_buffer = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
_buffer.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def quiet() -> None:
    """Silence third-party bars and send library logs and warnings to the log file from now on."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # every tqdm bar: transformers', datasets', TRL's, hub's
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    root = logging.getLogger()
    if _buffer not in root.handlers:
        root.addHandler(_buffer)
        # Libraries log warnings and up (at INFO some, like sentence-transformers, turn their bars on); ours all.
        root.setLevel(logging.WARNING)
        logging.getLogger("rolecraft").setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings.warn(...) → the "py.warnings" logger → the log file
    for name in LIBRARIES:
        _adopt(name)
    if not any(isinstance(f, _Adopter) for f in sys.meta_path):
        sys.meta_path.insert(0, _Adopter())


@contextmanager
def log_to(path: Path) -> Iterator[None]:
    """Write the log (what is buffered, and everything until the block ends) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as file:
        handler = logging.StreamHandler(file)
        handler.setFormatter(_buffer.formatter)
        _buffer.setTarget(handler)
        _buffer.flush()
        _buffer.flushLevel = logging.DEBUG  # now write through
        try:
            yield
        finally:
            _buffer.flush()
            _buffer.flushLevel = logging.CRITICAL + 1
            _buffer.setTarget(None)


def _adopt(name: str) -> None:
    """The library's logger loses its own terminal handlers and passes its records up to ours."""
    if name not in sys.modules:
        return
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (sys.stderr, sys.stdout):
            logger.removeHandler(handler)
    logger.propagate = True


class _Adopter(importlib.abc.MetaPathFinder):
    """Runs `_adopt` right after a watched library's package has been imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in LIBRARIES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module, run=run):
            run(module)
            _adopt(fullname)

        spec.loader.exec_module = exec_module
        return spec
