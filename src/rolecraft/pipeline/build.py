"""`rolecraft build`: the ordered list of steps, from a card or profile to a report and exports.

    statements → queries → scenes → experiences → protective → (selfalign) → sft
        → relevance → nli → nli_labels → discriminators → preference → dpo → evaluation → export

Each entry is one Step (`rolecraft.step`); adding a stage is one file and one line here. A step's
`reads` decide its fingerprint, so a changed setting re-runs that step and what reads it, no more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rolecraft.character import Character
from rolecraft.eval.run import EvaluationStep
from rolecraft.pipeline.export import ExportStep
from rolecraft.pipeline.presets import PRESETS, Preset
from rolecraft.pipeline.runner import StepRun, run, source_of
from rolecraft.step import Models, Step
from rolecraft.synth.experiences import ExperiencesStep
from rolecraft.synth.nli import NLILabelsStep, NLIResponsesStep
from rolecraft.synth.preference import PreferenceStep
from rolecraft.synth.protective import ProtectiveStep
from rolecraft.synth.queries import QueriesStep
from rolecraft.synth.relevance import RelevanceStep
from rolecraft.synth.scenes import ScenesStep
from rolecraft.synth.selfalign_run import SelfAlignStep
from rolecraft.synth.statements import StatementsStep
from rolecraft.train.discriminators import DiscriminatorsStep
from rolecraft.train.dpo import DPOStep
from rolecraft.train.sft import SFTStep
from rolecraft.workspace import Workspace


def build_steps(preset: Preset, models: Models) -> list[Step]:
    p = preset
    sft_inputs = (ExperiencesStep, ProtectiveStep) + ((SelfAlignStep,) if p.selfalign else ())
    return [
        StatementsStep(p.statements),
        QueriesStep(p.queries),
        ScenesStep(p.scenes),
        ExperiencesStep(p.experiences),
        ProtectiveStep(p.protective),
        *([SelfAlignStep(p.selfalign)] if p.selfalign else []),
        SFTStep(p.sft, p.sft_config, reads=sft_inputs),
        RelevanceStep(p.faithfulness),
        NLIResponsesStep(p.faithfulness),
        NLILabelsStep(p.faithfulness),
        DiscriminatorsStep(p.discriminators.model_copy(update={"base": models.discriminator})),
        PreferenceStep(p.preference, reads=(QueriesStep, SFTStep, DiscriminatorsStep)),
        DPOStep(p.dpo_config, p.dpo_rank, lora=p.dpo_lora),
        EvaluationStep(p.eval, reads=(StatementsStep, QueriesStep, SFTStep, DiscriminatorsStep, DPOStep)),
        ExportStep(p.name),
    ]


def open_workspace(character: Character, root: str | Path | None) -> Workspace:
    """The build folder; a changed profile or card replaces the stored character (and so every step)."""
    ws = Workspace.for_character(character, root)
    if source_of(ws.stored_character()) != source_of(character):
        ws.save_character(character)
    return ws


def run_build(
    character: Character,
    workspace: str | Path | None = None,
    preset: str | Preset = "tiny",
    models: Models | None = None,
    on_step: Callable[[Step, int, int], None] | None = None,
    steps: list[Step] | None = None,
) -> tuple[Workspace, list[StepRun]]:
    """Run the build (or the `steps` given, e.g. `[*build_steps(preset, models), MyStep()]`)."""
    preset = PRESETS[preset]() if isinstance(preset, str) else preset
    models = models or Models()
    ws = open_workspace(character, workspace)
    return ws, run(steps if steps is not None else build_steps(preset, models), ws, models, on_step)
