"""What a finished build hands over: character cards that name their adapter, and the training sets
as Hugging Face `datasets` on disk (`datasets.load_from_disk`)."""

from __future__ import annotations

import shutil

from rolecraft.cards import export_card
from rolecraft.step import Context, Output, Step
from rolecraft.synth.preference import PreferenceStep
from rolecraft.train.dpo import DPOStep
from rolecraft.train.sft import SFTStep


class ExportStep(Step):
    """Writes `export/`: V2/V3 cards (PNG and JSON) whose `extensions.rolecraft` name the best adapter
    and its base model, and the SFT and preference rows as datasets."""

    name = "export"
    reads = (SFTStep, PreferenceStep, DPOStep)
    roles = ("student",)

    def __init__(self, preset: str):
        super().__init__()
        self.preset = preset

    def fingerprint(self) -> str:
        return self.preset

    async def run(self, ctx: Context) -> Output:
        from datasets import Dataset

        ws, character = ctx.workspace, ctx.character()
        out = ws.path("export")
        adapter = ws.best_adapter()
        extension = {"rolecraft": {"adapter": str(adapter.resolve()) if adapter else None, "base_model": ctx.models.student,
                                   "preset": self.preset, "workspace": str(ws.root.resolve())}}
        cards = [
            export_card(character, out / f"{character.slug}.{version}.{kind}", version, extensions=extension)
            for version in ("v2", "v3")
            for kind in ("png", "json")
        ]
        sets = {"sft": [{"messages": [m.model_dump() for m in r.messages], "source": r.source} for r in ctx.read(SFTStep)],
                "preference": [r.model_dump(mode="json") for r in ctx.read(PreferenceStep)]}
        shutil.rmtree(out / "datasets", ignore_errors=True)  # no set left from an older build
        for name, rows in sets.items():
            if rows:
                Dataset.from_list(rows).save_to_disk(str(out / "datasets" / name))
        return Output(info={"cards": [str(c) for c in cards], "datasets": [n for n, rows in sets.items() if rows],
                            "adapter": extension["rolecraft"]["adapter"]})
