"""`rolecraft build`: the ordered list of steps, from a card or profile to a report and exports.

    statements → probes (held out) → queries → qa → boundary → (scenes → experiences → protective)
        → (selfalign) → sft → relevance / nli contrasts (→ teacher relevance, nli, nli_labels)
        → discriminators → preference → dpo → evaluation → export

Each entry is one Step (`rolecraft.step`); adding a stage is one file and one line here. A step's
`reads` decide its fingerprint, so a changed setting re-runs that step and what reads it, no more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rolecraft.character import Character
from rolecraft.eval.run import EvaluationStep
from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord
from rolecraft.formats.experience import Experience
from rolecraft.pipeline.export import ExportStep
from rolecraft.pipeline.presets import PRESETS, Preset
from rolecraft.pipeline.runner import StepRun, run, source_of
from rolecraft.step import Models, Step
from rolecraft.synth.boundary import BoundaryStep
from rolecraft.synth.contrasts import NLIContrastsStep, RelevanceContrastsStep
from rolecraft.synth.experiences import ExperiencesStep
from rolecraft.synth.nli import NLILabelsStep, NLIResponsesStep
from rolecraft.synth.preference import PreferenceStep
from rolecraft.synth.probes import ProbesStep
from rolecraft.synth.protective import ProtectiveStep
from rolecraft.synth.qa import QAStep
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
    character_llm = [ScenesStep(p.scenes), ExperiencesStep(p.experiences), ProtectiveStep(p.protective)] if p.character_llm else []
    selfalign = [SelfAlignStep(p.selfalign)] if p.selfalign else []
    teacher_labels = [RelevanceStep(p.faithfulness), NLIResponsesStep(p.faithfulness), NLILabelsStep(p.faithfulness)] \
        if p.teacher_labels else []
    contrasts = [RelevanceContrastsStep(p.contrasts), NLIContrastsStep(p.contrasts)]
    discriminator_rows = tuple(type(s) for s in contrasts + teacher_labels if s.record in (RelevanceRecord, NLILabelRecord))
    sft_rows = (QAStep, BoundaryStep, *(type(s) for s in character_llm if s.record is Experience), *map(type, selfalign))
    return [
        StatementsStep(p.statements),
        ProbesStep(p.probes),
        QueriesStep(p.queries),
        QAStep(p.qa),
        BoundaryStep(p.boundary, p.probes),
        *character_llm,
        *selfalign,
        SFTStep(p.sft, p.sft_config, reads=sft_rows),
        *contrasts,
        *teacher_labels,
        DiscriminatorsStep(p.discriminators.model_copy(update={"base": models.discriminator}), reads=discriminator_rows),
        # The trained agent is sampled as it is evaluated: with its persona prompt only, no retrieval.
        PreferenceStep(p.preference, rag=False, reads=(QueriesStep, SFTStep, DiscriminatorsStep)),
        DPOStep(p.dpo_config, p.dpo_rank, lora=p.dpo_lora),
        EvaluationStep(p.eval, reads=(StatementsStep, ProbesStep, SFTStep, DiscriminatorsStep, DPOStep)),
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
