"""Character-LLM's inference protocol: the prompt, parsing what the model continues with, and the
think-until-speaking loop (on recorded continuations; a real tiny model runs it in test_sft)."""

from __future__ import annotations

import pytest

from rolecraft.agent.charllm import CharLLMScene, charllm_prompt, parse_continuation, respond_character_llm
from rolecraft.character import Character
from rolecraft.formats.charllm import EOT
from rolecraft.formats.experience import Turn
from rolecraft.llm import Completion, SamplingParams, run_sync
from rolecraft.llm.base import ChatModel

BEETHOVEN = Character(full_name="Ludwig van Beethoven", short_name="Beethoven")


class RecordedWriter(ChatModel):
    """A raw-text model that continues each prompt with the next recorded continuation."""

    provider = "recorded"

    def __init__(self, continuations: list[str]):
        super().__init__("writer")
        self.continuations = list(continuations)
        self.prompts: list[str] = []
        self.params: list[SamplingParams] = []

    async def generate(self, conversations, params, schema=None):
        raise AssertionError("the Character-LLM protocol continues raw text; it never sends chats")

    async def complete(self, prompts, params):
        self.prompts += prompts
        self.params.append(params)
        return [Completion(text=self.continuations.pop(0)) for _ in prompts]


def test_prompt_is_meta_prompt_history_and_an_open_turn():
    history = [
        {"role": "user", "content": "Good afternoon."},
        {"role": "assistant", "content": "Is it?"},
        Turn(role="Beethoven", action="thinking", content="Another visitor."),
        Turn(role="Man", action="thinking", content="He looks grumpy."),  # not the character's: left out
        {"role": "user", "content": "What are you writing?"},
    ]
    prompt = charllm_prompt(BEETHOVEN, history)
    assert prompt.startswith("I want you to act like Ludwig van Beethoven.")
    assert "Location: Coffee Shop - Afternoon\nStatus: Beethoven is casually chatting with a man from the 21st century.\n" in prompt
    assert prompt.endswith(
        "The interactions are as follows:\n\n"
        "Man (speaking): Good afternoon.<|eot|>\n"
        "Beethoven (speaking): Is it?<|eot|>\n"
        "Beethoven (thinking): Another visitor.<|eot|>\n"
        "Man (speaking): What are you writing?<|eot|>\n"
        "Beethoven ("
    )
    short = charllm_prompt(BEETHOVEN, history, CharLLMScene(location="Vienna", status="At home.", user="Karl"), max_turns=1)
    assert "Location: Vienna\nStatus: At home.\n" in short and short.endswith("\n\nKarl (speaking): What are you writing?<|eot|>\nBeethoven (")


@pytest.mark.parametrize(
    ("text", "action", "content"),
    [
        ("speaking): Leave me alone.<|eot|>\nMan (speaking): ...", "speaking", "Leave me alone."),
        ("thinking): He will not go away.", "thinking", "He will not go away."),
        ("whispering): Quiet!", "speaking", "Quiet!"),
        ("no parenthesis at all", "speaking", "no parenthesis at all"),
        ("speaking): I do.\nMan (speaking): I'm a guitar player.", "speaking", "I do."),  # no EOT: next header ends it
    ],
)
def test_continuations_are_parsed(text, action, content):
    turn = parse_continuation(BEETHOVEN, text)
    assert (turn.role, turn.action, turn.content) == ("Beethoven", action, content)


def test_thoughts_stay_in_context_until_the_character_speaks():
    writer = RecordedWriter(["thinking): Another question.", "thinking): Be patient.", "speaking): A symphony, sir."])
    reply = run_sync(respond_character_llm(BEETHOVEN, writer, [{"role": "user", "content": "What are you writing?"}]))
    assert reply.text == "A symphony, sir." and reply.thoughts == ["Another question.", "Be patient."]
    assert writer.prompts[1].endswith("Beethoven (thinking): Another question.<|eot|>\nBeethoven (")
    assert writer.prompts[2].endswith("Beethoven (thinking): Be patient.<|eot|>\nBeethoven (")
    assert all(EOT in p.stop for p in writer.params)  # each call ends at the end of a turn
    assert writer.params[0].temperature == 0.2  # the reference's sampling when none is given


def test_a_character_that_keeps_thinking_is_made_to_speak():
    writer = RecordedWriter(["thinking): One.", "thinking): Two.", " Fine, I will answer.<|eot|>"])
    reply = run_sync(respond_character_llm(BEETHOVEN, writer, [{"role": "user", "content": "Well?"}], max_thoughts=2))
    assert reply.text == "Fine, I will answer." and reply.thoughts == ["One.", "Two."]
    assert writer.prompts[-1].endswith("Beethoven (speaking):")
