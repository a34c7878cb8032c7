"""The chat templates TRL trains with: they render rows exactly as the student will see them and mark
the trained roles with `{% generation %}`, so TRL's assistant-only loss covers exactly those tokens.

Loss `target` (default) trains on the target character's turns only; `all` on every line, as
Character-LLM did. For the chat format the template must render exactly like the student's own chat
template, so the model is trained on the text it sees when served — `training_template` checks this
on every row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.formats.charllm import text_chat_template
from rolecraft.formats.sft import Format, LossOn, SFTRow

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")

# Templates TRL does not know (SmolLM2's ChatML, hand-written Llama 3 variants) by family: (before the
# loop, message head, content, end of message, separator, generation prompt). Every candidate, TRL's
# included, is used only if it renders the rows exactly like the student's own template.
_FAMILIES: dict[str, tuple[str, str, str, str, str, str]] = {
    "chatml": ("", "<|im_start|>{{ m['role'] }}\n", "{{ m['content'] }}", "<|im_end|>", "\n", "<|im_start|>assistant\n"),
    "llama3": (
        "{{ bos_token }}",
        "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n",
        "{{ m['content'] | trim }}",
        "<|eot_id|>",
        "",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
}


def marked_template(family: str, train_roles: Sequence[str]) -> str:
    start, head, content, end, sep, prompt = _FAMILIES[family]
    # transformers compiles templates with trim_blocks: a newline right after a block tag vanishes,
    # so literal text after one goes through an expression.
    sep = f"{{{{ {sep!r} }}}}" if sep else ""
    marked = " or ".join(f"m['role'] == '{r}'" for r in train_roles) or "false"
    return (
        f"{start}{{% for m in messages %}}{head}"
        f"{{% if {marked} %}}{{% generation %}}{content}{end}{{% endgeneration %}}{{% else %}}{content}{end}{{% endif %}}"
        f"{sep}{{% endfor %}}{{% if add_generation_prompt %}}{prompt}{{% endif %}}"
    )


def _render(tokenizer: Any, messages: list[dict[str, str]], template: str) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)


def _trl_training_template(tokenizer: Any) -> str | None:
    """TRL's marked variant of a known template (Llama 3, Qwen, Gemma, Phi, ...), if it has one."""
    from trl.chat_template_utils import get_training_chat_template

    try:
        return get_training_chat_template(tokenizer)
    except ValueError:  # TRL does not know this template
        return None


def training_template(tokenizer: Any, rows: Sequence[SFTRow], format: Format, loss: LossOn = "target") -> str:
    """The chat template TRL trains with: it renders the rows as the format defines and marks the
    trained roles with `{% generation %}`."""
    roles = ("assistant",) if loss == "target" else ("user", "assistant")
    if format == "prompted":
        return text_chat_template(roles)
    own = tokenizer.chat_template
    if not own:
        raise RolecraftError(
            "the student model has no chat template, so the chat format cannot be used",
            "train with --format prompted (Character-LLM's text format)",
        )
    candidates = []
    if loss == "target":
        if _GENERATION.search(own):
            return own
        candidates += [t for t in [_trl_training_template(tokenizer)] if t]
    candidates += [marked_template(family, roles) for family in _FAMILIES]
    dumped = [[m.model_dump() for m in r.messages] for r in rows]
    try:
        expected = [_render(tokenizer, msgs, own) for msgs in dumped]
    except Exception as e:  # jinja raises whatever the template author chose (e.g. "roles must alternate")
        raise RolecraftError(
            f"the student's chat template cannot render the training conversations ({e})",
            "train with --format prompted",
        ) from None
    for candidate in candidates:
        if all(_render(tokenizer, msgs, candidate) == text for msgs, text in zip(dumped, expected)):
            return candidate
    raise RolecraftError(
        "cannot mark the student's chat template for target-only loss (TRL has no training variant of it, "
        "it is neither ChatML nor Llama 3, and it has no {% generation %} markers)",
        "train with --format prompted, or pass a template with {% generation %} markers "
        "(-- --chat_template_path FILE.jinja)",
    )
