"""What a finished build hands over: character cards that name their adapter, and the training sets
as Hugging Face `datasets` on disk (`datasets.load_from_disk`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolecraft.pipeline.stages import Build


def best_adapter(b: Build) -> str | None:
    for name in ("dpo", "sft"):
        if (b.adapter(name) / "adapter_config.json").exists():
            return str(b.adapter(name).resolve())
    return None


def export_build(b: Build) -> dict[str, Any]:
    from datasets import Dataset

    from rolecraft.cards import export_card
    from rolecraft.datasets.sft import sft_rows
    from rolecraft.pipeline.stages import selfalign_rows
    from rolecraft.synth.records import Experience

    ws, character = b.workspace, b.character
    out = ws.path("export")
    extension = {"rolecraft": {"adapter": best_adapter(b), "base_model": b.models.student, "preset": b.preset.name,
                               "workspace": str(ws.root.resolve())}}
    cards = [
        export_card(character, out / f"{character.slug}.{version}.{kind}", version, extensions=extension)
        for version in ("v2", "v3")
        for kind in ("png", "json")
    ]

    experiences = ws.read("experiences", Experience) + ws.read("protective", Experience)
    rows, _ = sft_rows(character, experiences, "chat")
    rows += selfalign_rows(b)
    Dataset.from_list([{"messages": [m.model_dump() for m in r.messages], "source": r.source} for r in rows]).save_to_disk(
        str(out / "datasets" / "sft")
    )
    sets = ["sft"]
    if ws.has("preference") and (pairs := ws.read("preference")):
        Dataset.from_list(pairs).save_to_disk(str(out / "datasets" / "preference"))
        sets.append("preference")
    return {"cards": [str(c) for c in cards], "datasets": sets, "adapter": extension["rolecraft"]["adapter"]}
