"""Training shown in our progress display (steps, rate and ETA), with the trainer's log lines (loss,
learning rate ...) in the log file: `show_progress(trainer, ...)` replaces the Trainer's tqdm bar or
its printed dicts."""

from __future__ import annotations

import logging
from contextlib import ExitStack

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from rolecraft.progress import progress

log = logging.getLogger(__name__)


def show_progress(trainer, description: str):
    """The trainer, reporting to our display and log instead of its own."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TrainingProgress(description))
    return trainer


class TrainingProgress(TrainerCallback):
    def __init__(self, description: str):
        self.description = description
        self.stack = ExitStack()
        self.advance = None
        self.done = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.done = state.global_step  # a resumed run starts part-way
        self.advance = self.stack.enter_context(progress(state.max_steps, self.description))
        if self.done:
            self.advance(self.done)

    def on_step_end(self, args, state, control, **kwargs):
        if self.advance:
            self.advance(state.global_step - self.done)
            self.done = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        log.info("%s, step %d/%d: %s", self.description, state.global_step, state.max_steps, logs)

    def on_train_end(self, args, state, control, **kwargs):
        self.stack.close()
        self.advance = None
