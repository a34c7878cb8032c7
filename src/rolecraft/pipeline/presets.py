"""Build presets: every count and hyper-parameter of `rolecraft build`, in one typed record.

`tiny` is the README's main job: the embedded SmolLM2 on 2 CPU cores in about a quarter of an hour,
small counts that still exercise every stage. `paper` uses the counts and hyper-parameters of
Character-LLM, APC and Ditto, for a real teacher and a GPU student; each value's source (paper section
or script line) is listed in docs/experiences.md and docs/faithfulness.md ("The paper preset").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from rolecraft.eval.run import EvalCounts
from rolecraft.synth.experiences import ExperienceSettings
from rolecraft.synth.preference import PreferenceSettings
from rolecraft.synth.protective import ProtectiveSettings
from rolecraft.synth.queries import QuerySettings
from rolecraft.synth.relevance import FaithfulnessDataSettings
from rolecraft.synth.scenes import SceneSettings
from rolecraft.synth.selfalign import SelfAlignConfig
from rolecraft.synth.statements import StatementSettings
from rolecraft.train.discriminators import DiscriminatorSettings
from rolecraft.train.sft import SFTSettings

PresetName = Literal["tiny", "paper"]


class Preset(BaseModel):
    name: PresetName
    statements: StatementSettings
    queries: QuerySettings
    scenes: SceneSettings
    experiences: ExperienceSettings
    protective: ProtectiveSettings
    sft: SFTSettings
    sft_config: dict[str, Any] = Field(default_factory=dict)  # TRL SFTConfig fields over our defaults
    faithfulness: FaithfulnessDataSettings
    discriminators: DiscriminatorSettings
    preference: PreferenceSettings
    dpo_config: dict[str, Any] = Field(default_factory=dict)  # TRL DPOConfig fields over our defaults
    dpo_rank: int = 32
    dpo_lora: dict[str, Any] = Field(default_factory=dict)  # LoraConfig fields over rolecraft's (alpha = 2 × rank)
    eval: EvalCounts = Field(default_factory=EvalCounts)
    selfalign: SelfAlignConfig | None = None  # Ditto's self-aligned dialogues, added to SFT when asked

    def with_selfalign(self) -> Preset:
        """This preset with self-aligned dialogues on. One character has no others to borrow
        contrastive questions from, so every simulated question is about the character itself."""
        counts = {"tiny": {"queries": 4, "turns": 2, "query_tokens": 32, "response_tokens": 64}, "paper": {}}[self.name]
        return self.model_copy(update={"selfalign": SelfAlignConfig(contrastive_share=0.0, shard_size=1, **counts)})


def tiny() -> Preset:
    return Preset(
        name="tiny",
        statements=StatementSettings.tiny(),
        queries=QuerySettings.tiny(),
        scenes=SceneSettings.tiny(),
        experiences=ExperienceSettings.tiny(),
        protective=ProtectiveSettings.tiny(),
        sft=SFTSettings(lora_r=8, lora_alpha=16, eval_fraction=0.0),
        sft_config={"num_train_epochs": 2, "max_length": 512, "logging_steps": 1, "save_strategy": "no"},
        faithfulness=FaithfulnessDataSettings.tiny(),
        discriminators=DiscriminatorSettings.tiny(),
        preference=PreferenceSettings.tiny(),
        dpo_config={"gradient_accumulation_steps": 2, "max_length": 384},
        dpo_rank=8,
        eval=EvalCounts(single=2, probes=1, multi=1, rounds=2, reply_tokens=64, judge_tokens=160),
    )


def paper() -> Preset:
    """The papers' values where they give one (sources in the docs); the SFT optimisation stays
    rolecraft's LoRA, since Character-LLM's full fine-tune of a 7B model needs eight A100s."""
    return Preset(
        name="paper",
        statements=StatementSettings(),
        queries=QuerySettings(),
        scenes=SceneSettings(),
        experiences=ExperienceSettings(),
        protective=ProtectiveSettings(per_paragraph=True),  # Character-LLM: one per profile paragraph
        sft=SFTSettings(eval_fraction=0.02, loss="all"),  # Character-LLM: 2 % held out, loss on every line
        faithfulness=FaithfulnessDataSettings(),
        discriminators=DiscriminatorSettings(learning_rate=1e-5, batch_size=8),  # APC: DeBERTa-v3-large, 5 / 10 epochs
        # APC: 100 queries drawn at random from all of them, 2 replies of up to 256 new tokens at T 1.0, margin 0.2.
        preference=PreferenceSettings(max_contexts=100, max_tokens=256, held_out=0.0, samples=2, temperature=1.0),
        # APC: 10 epochs, lr 2e-4, beta 0.1, batch 1 x 8; LoRA rank 128 with PEFT's default alpha 8, no dropout.
        dpo_config={"num_train_epochs": 10, "learning_rate": 2e-4, "beta": 0.1,
                    "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8},
        dpo_rank=128,
        dpo_lora={"lora_alpha": 8, "lora_dropout": 0.0},
    )


PRESETS = {"tiny": tiny, "paper": paper}
