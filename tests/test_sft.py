"""SFT on a tiny real Llama: the loss mask, dropped rows, LoRA / full training, resuming, settings,
SFTConfig pass-through, and the accelerate configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.experience import Experience, Turn
from rolecraft.train.sft import SFTSettings, sft_trainer, split_rows, train_sft
from rolecraft.train.sft_config import sft_config, sft_overrides

BEETHOVEN = Character(full_name="Ludwig van Beethoven", short_name="Beethoven")
ACCELERATE = Path(__file__).resolve().parents[1] / "src" / "rolecraft" / "train" / "accelerate"


def experience(i: int) -> Experience:
    return Experience(
        id=f"e{i:04d}",
        character="Beethoven",
        location="Vienna",
        background=f"Rehearsal {i}.",
        dialogue=[
            Turn(role="Karl", content=f"Uncle, bar {i}!"),
            Turn(role="Beethoven", action="thinking", content="Late again."),
            Turn(role="Beethoven", content=f"Again from bar {i}."),
            Turn(role="Karl", content="Yes, uncle."),
        ],
        source=f"s{i:04d}",
    )


DATA = [experience(i) for i in range(6)]


def settings(model_dir: Path, **kw) -> SFTSettings:
    return SFTSettings(student=f"hf:{model_dir}", **{"eval_fraction": 0.0, **kw})


def fast(**kw) -> dict:
    """SFTConfig overrides that keep a tiny run short."""
    return {"max_steps": 2, "per_device_train_batch_size": 2, "save_strategy": "no", "logging_steps": 1,
            "disable_tqdm": True, **kw}


def trained_texts(prepared) -> list[str]:
    tok = prepared.trainer.processing_class
    return [tok.decode([t for t, label in zip(r["input_ids"], r["labels"]) if label != -100]) for r in prepared.trainer.train_dataset]


@pytest.mark.parametrize(
    ("fmt", "loss", "expected"),
    [
        ("prompted", "target", "Beethoven (thinking): Late again.<|eot|>Beethoven (speaking): Again from bar {i}.<|eot|>"),
        ("chat", "target", "Again from bar {i}.<|im_end|>"),
        ("prompted", "all",
         "Karl (speaking): Uncle, bar {i}!<|eot|>Beethoven (thinking): Late again.<|eot|>"
         "Beethoven (speaking): Again from bar {i}.<|eot|>Karl (speaking): Yes, uncle.<|eot|>"),
    ],
)
def test_loss_mask_covers_exactly_the_characters_turns(tiny_model_dir, tmp_path, fmt, loss, expected):
    """The tokens TRL trains on (labels != -100), decoded, are the character's turns and nothing else."""
    prepared = sft_trainer(BEETHOVEN, DATA, settings(tiny_model_dir, format=fmt, loss=loss), tmp_path / "sft", fast())
    order = [int(re.search(r"bar (\d+)", text).group(1)) for text in trained_texts(prepared)]
    assert trained_texts(prepared) == [expected.format(i=i) for i in order]
    assert sorted(order) == list(range(6))


def test_rows_emptied_by_truncation_are_a_user_error(tiny_model_dir, tmp_path):
    # The meta prompt alone is longer than 64 tokens: nothing of the character's is left to learn.
    with pytest.raises(RolecraftError, match=r"all 6 training rows are longer than max_length \(64 tokens\).*raise max_length"):
        sft_trainer(BEETHOVEN, DATA, settings(tiny_model_dir, format="prompted"), tmp_path / "sft", fast(max_length=64))


def test_lora_training_saves_a_loadable_adapter_with_its_settings(tiny_model_dir, tmp_path):
    from rolecraft.agent.charllm import respond_character_llm
    from rolecraft.llm import SamplingParams, run_sync
    from rolecraft.llm.hf import HFChatModel

    out = tmp_path / "adapters" / "sft"
    result = train_sft(BEETHOVEN, DATA, settings(tiny_model_dir, format="prompted", eval_fraction=0.34), out, fast())
    assert result.rows == {"train": 3, "eval": 3, "dropped_train": 0, "dropped_eval": 0, "rejected": 0}
    assert "eval_loss" in result.metrics and result.tokens > 0
    info = json.loads((out / "training.json").read_text())
    assert info["base"] == str(tiny_model_dir) and info["format"] == "prompted" and info["lora"]["r"] == 16
    assert info["sft_config"]["max_steps"] == 2 and info["sft_config"]["assistant_only_loss"] is True
    assert not (tmp_path / "adapters" / ".sft.run").exists()  # checkpoints of a finished run are cleaned up
    assert "{% generation %}" not in (out / "chat_template.jinja").read_text()  # the student's own template is kept

    student = HFChatModel(f"{tiny_model_dir}@{out}")
    reply = run_sync(respond_character_llm(BEETHOVEN, student, [{"role": "user", "content": "Hello"}],
                                           SamplingParams(max_tokens=8, temperature=0.0)))
    assert reply.completion is not None and reply.completion.prompt_tokens > 0


def test_full_fine_tune_saves_a_model(tiny_model_dir, tmp_path):
    from rolecraft.llm.hf import HFChatModel

    out = tmp_path / "adapters" / "full"
    train_sft(BEETHOVEN, DATA, settings(tiny_model_dir, method="full", format="chat"), out, fast(max_steps=1))
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()
    assert HFChatModel(str(out)).model.num_parameters() > 0


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt  # the process dies right after the first checkpoint

    out = tmp_path / "adapters" / "sft"
    config = fast(max_steps=3, save_strategy="steps", save_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train_sft(BEETHOVEN, DATA, settings(tiny_model_dir), out, config, callbacks=[Crash()])
    assert list((tmp_path / "adapters" / ".sft.run").glob("checkpoint-1"))

    started = []

    class Watch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            started.append(state.global_step)

    train_sft(BEETHOVEN, DATA, settings(tiny_model_dir), out, config, callbacks=[Watch()])
    assert started == [1, 2]  # steps 2 and 3 only: step 1 came from the checkpoint
    assert (out / "adapter_config.json").exists()


def test_checkpoints_of_another_run_are_not_resumed(tiny_model_dir, tmp_path):
    run = tmp_path / "adapters" / ".sft.run"
    (run / "checkpoint-1").mkdir(parents=True)
    (run / "rolecraft_run.json").write_text(json.dumps({"fingerprint": "something else"}))
    with pytest.raises(RolecraftError, match="other data or settings"):
        sft_trainer(BEETHOVEN, DATA, settings(tiny_model_dir), tmp_path / "adapters" / "sft", fast())
    prepared = sft_trainer(BEETHOVEN, DATA, settings(tiny_model_dir), tmp_path / "adapters" / "sft", fast(), resume=False)
    assert not prepared.resume and not (run / "checkpoint-1").exists()


def test_bad_requests_are_user_errors(tiny_model_dir, tmp_path):
    with pytest.raises(RolecraftError, match="QLoRA needs"):
        sft_trainer(BEETHOVEN, DATA, settings(tiny_model_dir, method="qlora"), tmp_path / "a", fast())
    with pytest.raises(RolecraftError, match="local weights"):
        sft_trainer(BEETHOVEN, DATA, SFTSettings(student="openai:gpt-4o-mini"), tmp_path / "a", fast())
    silent = [e.model_copy(update={"dialogue": e.dialogue[:1]}) for e in DATA]
    with pytest.raises(RolecraftError, match="no training rows"):
        sft_trainer(BEETHOVEN, silent, settings(tiny_model_dir), tmp_path / "a", fast())


def test_sft_config_passes_trl_options_through(tmp_path):
    overrides = sft_overrides(["--num_train_epochs", "1", "--lr_scheduler_type", "linear", "--max_length=256"])
    assert overrides == {"num_train_epochs": 1.0, "lr_scheduler_type": "linear", "max_length": 256}
    config = sft_config(tmp_path, "lora", **overrides)
    assert (config.num_train_epochs, config.max_length, config.learning_rate) == (1.0, 256, 2e-4)
    assert config.use_cpu and not config.gradient_checkpointing  # the CPU defaults
    assert sft_config(tmp_path, "full").learning_rate == 2e-5
    with pytest.raises(RolecraftError, match="not SFTConfig options"):
        sft_overrides(["--bogus", "1"])


def test_split_is_seeded():
    rows = list(range(10))
    assert split_rows(rows, 0.2, 0) == split_rows(rows, 0.2, 0)
    train, held = split_rows(rows, 0.02, 0)
    assert len(held) == 1 and sorted(train + held) == rows
    assert split_rows(rows, 0.0, 0)[1] == []


@pytest.mark.parametrize("name", ["fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"])
def test_accelerate_configs_are_valid(name):
    """Each config loads into accelerate's ClusterConfig, every key is an `accelerate launch` option,
    and launch's own validation accepts it."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = ACCELERATE / name
    config = load_config_from_file(str(path))
    parser = launch_command_parser()
    options = {action.dest for action in parser._actions}
    section = config.fsdp_config or config.deepspeed_config
    assert section and set(section) <= options, set(section) - options
    args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "-m", "rolecraft", "train", "sft", "WS"]))
    assert (args.use_fsdp, args.use_deepspeed) == (name == "fsdp.yaml", name != "fsdp.yaml")
    assert args.mixed_precision == "bf16" and args.num_processes > 1


def test_ready_rows_replace_the_experiences(tiny_model_dir, tmp_path):
    """Other builders (self-aligned dialogues of many characters) hand in their own chat rows."""
    from rolecraft.formats.sft import sft_rows

    rows, _ = sft_rows(BEETHOVEN, DATA[:2], "chat")
    prepared = sft_trainer(BEETHOVEN, [], settings(tiny_model_dir, format="chat"), tmp_path / "sft", fast(), rows=rows)
    assert prepared.rows["train"] == 2 and sorted(trained_texts(prepared)) == [
        "Again from bar 0.<|im_end|>", "Again from bar 1.<|im_end|>"
    ]


def test_scoring_only_the_trained_positions_gives_the_same_loss(tiny_model_dir, tmp_path):
    """On CPU the LM head scores only the character's tokens (a fraction of each row): the loss and its
    gradient are the ones TRL computes scoring every position."""
    import torch
    from trl.trainer import utils

    prepared = sft_trainer(BEETHOVEN, DATA, settings(tiny_model_dir, format="chat"), tmp_path / "sft", fast())
    trainer = prepared.trainer
    assert getattr(utils._use_triton, "cpu_compact", False)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    model = trainer.model
    lora = [p for n, p in model.named_parameters() if p.requires_grad]

    def loss_and_grad():
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in lora])

    model.train(False)  # no dropout: the two passes must see the same network
    compact, compact_grad = loss_and_grad()
    patched, utils._use_triton = utils._use_triton, lambda device: False  # TRL's own choice on CPU
    try:
        every, every_grad = loss_and_grad()
    finally:
        utils._use_triton = patched
    assert compact == pytest.approx(every, rel=1e-5) and torch.allclose(compact_grad, every_grad, rtol=1e-4, atol=1e-7)
