"""Build presets: every count and hyper-parameter of `rolecraft build`, in one typed record.

`tiny` is the README's main job: the embedded SmolLM2 on 2 CPU cores, spending its time where a 135M
teacher can still give a student something true to learn: statements constructed from the profile,
question-answer rows and knowledge-boundary deflections (verified, constructed where the teacher
fails), discriminators trained on rows labelled by construction plus APC's published base, and an
evaluation on held-out probes that needs no judge. `paper` uses the counts and hyper-parameters of
Character-LLM, APC and Ditto, for a real teacher and a GPU student; each value's source (paper section
or script line) is listed in docs/experiences.md and docs/faithfulness.md ("The paper preset").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from rolecraft.eval.run import EvalCounts
from rolecraft.synth.boundary import BoundarySettings
from rolecraft.synth.contrasts import ContrastSettings
from rolecraft.synth.experiences import ExperienceSettings
from rolecraft.synth.preference import PreferenceSettings
from rolecraft.synth.probes import ProbeSettings
from rolecraft.synth.protective import ProtectiveSettings
from rolecraft.synth.qa import QASettings
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
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    queries: QuerySettings
    qa: QASettings = Field(default_factory=QASettings)
    boundary: BoundarySettings = Field(default_factory=BoundarySettings)
    scenes: SceneSettings
    experiences: ExperienceSettings
    protective: ProtectiveSettings
    character_llm: bool = True  # Character-LLM's scenes, experiences and protective scripts
    sft: SFTSettings
    sft_config: dict[str, Any] = Field(default_factory=dict)  # TRL SFTConfig fields over our defaults
    contrasts: ContrastSettings = Field(default_factory=ContrastSettings)
    faithfulness: FaithfulnessDataSettings
    teacher_labels: bool = True  # APC's teacher-written and -labelled relevance and NLI rows
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
        probes=ProbeSettings(max_fact_probes=30, max_boundary_probes=12),
        queries=QuerySettings.tiny(),
        qa=QASettings(candidates=1, max_tokens=48),
        boundary=BoundarySettings(per_topic=1, candidates=2, max_tokens=64),
        scenes=SceneSettings.tiny(),
        experiences=ExperienceSettings.tiny(),
        protective=ProtectiveSettings.tiny(),
        # A 135M teacher's scripts are mostly noise (incoherent or looping): the QA and boundary rows,
        # right by construction, teach more per minute of CPU.
        character_llm=False,
        # No LoRA dropout: 20 steps that must memorise facts gain nothing from it, and it was 11 % of a step.
        sft=SFTSettings(lora_r=16, lora_alpha=32, lora_dropout=0.0, eval_fraction=0.0),
        # Enough steps that the adapter moves: a high LoRA rate, no warm-up to spend steps at rate 0. Batches
        # of 8 rows are accumulated from micro-batches of 2, so that a card whose persona prompt is 1,000
        # tokens long trains in a few GB (8 such rows at once took more than 24 GB).
        sft_config={"num_train_epochs": 4, "learning_rate": 1.5e-3, "warmup_steps": 0, "lr_scheduler_type": "linear",
                    "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4, "max_length": 1024,
                    "logging_steps": 1, "save_strategy": "no"},  # every step's loss: a small card has few
        faithfulness=FaithfulnessDataSettings.tiny(),
        teacher_labels=False,
        discriminators=DiscriminatorSettings(epochs=3, min_steps=120, max_length=128, base_data=True),
        preference=PreferenceSettings(max_contexts=16, max_tokens=48),
        # As SFT's: a card's persona prompt alone can pass 384 tokens, and TRL drops such pairs.
        dpo_config={"num_train_epochs": 2, "gradient_accumulation_steps": 2, "max_length": 1024},
        dpo_rank=8,
        eval=EvalCounts(single=2, probes=1, multi=1, rounds=2, reply_tokens=40, judge_tokens=112),
    )


def paper() -> Preset:
    """The papers' values where they give one (sources in the docs); the SFT optimisation stays
    rolecraft's LoRA, since Character-LLM's full fine-tune of a 7B model needs eight A100s."""
    return Preset(
        name="paper",
        statements=StatementSettings(source="teacher"),
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
