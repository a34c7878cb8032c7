"""The build: its ordered steps (`build`), the runner that owns their outputs (`runner`), presets.

    ws, runs = run_build(load_character("alice.png"), preset="tiny")
    runs = run([StatementsStep(StatementSettings())], ws, Models(teacher="openai:gpt-4o-mini"))
"""

from rolecraft.pipeline.build import build_steps, open_workspace, run_build
from rolecraft.pipeline.presets import PRESETS, Preset
from rolecraft.pipeline.runner import StepRun, context, run, run_steps
from rolecraft.progress import console
from rolecraft.step import Models

__all__ = ["Models", "PRESETS", "Preset", "StepRun", "build_steps", "console", "context", "open_workspace", "run",
           "run_build", "run_steps"]
