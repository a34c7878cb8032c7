"""The hf: backend on a tiny real Llama: batching, seeds, stops, schemas, adapters, raw text."""

from __future__ import annotations

import json

import pytest

from rolecraft.errors import RolecraftError
from rolecraft.llm import SamplingParams, load_model, parse_spec, run_sync

CHATS = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "tell me about Alice and the tea"}]]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(f"hf:{tiny_model_dir}", batch_size=2)


def test_batch_generation_returns_one_completion_per_chat_with_counts(tiny):
    out = run_sync(tiny.generate(CHATS, SamplingParams(max_tokens=6, temperature=0)))
    assert len(out) == 2
    assert all(c.completion_tokens <= 6 and c.prompt_tokens > 0 for c in out)
    assert out[1].prompt_tokens > out[0].prompt_tokens  # padding is not counted


def test_greedy_is_independent_of_batch_composition(tiny):
    params = SamplingParams(max_tokens=8, temperature=0)
    together = run_sync(tiny.generate(CHATS, params))
    alone = [run_sync(tiny.generate([c], params))[0] for c in CHATS]
    assert [c.text for c in together] == [c.text for c in alone]


def test_sampling_is_repeatable_for_a_seed_and_varies_across_seeds(tiny):
    def sample(seed):
        return [c.text for c in run_sync(tiny.generate(CHATS, SamplingParams(max_tokens=12, temperature=1.0, seed=seed)))]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_schema_constrained_output_is_valid_json(tiny):
    schema = {
        "type": "object",
        "properties": {"location": {"type": "string", "maxLength": 12}, "indoor": {"type": "boolean"}},
        "required": ["location", "indoor"],
    }
    out = run_sync(tiny.generate(CHATS, SamplingParams(max_tokens=40, temperature=0.8), schema=schema))
    for completion in out:
        value = json.loads(completion.text)
        assert set(value) == {"location", "indoor"} and isinstance(value["indoor"], bool)


def test_only_the_most_recent_schema_processors_are_kept(tiny):
    from rolecraft.llm.hf import KEPT_PROCESSORS

    def schema(n):
        return {"type": "object", "properties": {f"field{n}": {"type": "boolean"}}, "required": [f"field{n}"]}

    for n in range(KEPT_PROCESSORS + 2):
        [answer] = run_sync(tiny.generate(CHATS[:1], SamplingParams(max_tokens=16, temperature=0), schema=schema(n)))
        assert set(json.loads(answer.text)) == {f"field{n}"}  # an evicted processor is rebuilt, never reused wrongly
    kept = [json.loads(key)["required"][0] for key in tiny._processors]
    assert kept == [f"field{n}" for n in range(2, KEPT_PROCESSORS + 2)]


def test_stop_strings_cut_the_text(tiny):
    params = SamplingParams(max_tokens=20, temperature=1.0, seed=3)
    free = run_sync(tiny.generate(CHATS[:1], params))[0].text
    at = next(k for k in range(3, len(free)) if free.find(free[k]) == k and free[k].strip())
    stop = free[at]
    cut = run_sync(tiny.generate(CHATS[:1], params.model_copy(update={"stop": [stop]})))[0]
    assert cut.text == free[:at] and cut.finish_reason == "stop"


def test_complete_continues_raw_text_without_a_template(tiny):
    [out] = run_sync(tiny.complete(["Alice (speaking):"], SamplingParams(max_tokens=5, temperature=0)))
    [chat] = run_sync(tiny.generate([[{"role": "user", "content": "Alice (speaking):"}]], SamplingParams(max_tokens=5, temperature=0)))
    assert out.prompt_tokens < chat.prompt_tokens  # no template wrapped around the prompt


def test_adapter_changes_outputs_and_identity(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    plain = load_model(f"hf:{tiny_model_dir}")
    tuned = load_model(f"hf:{tiny_model_dir}@{tmp_path / 'adapter'}")
    params = SamplingParams(max_tokens=8, temperature=0)
    assert run_sync(plain.generate(CHATS, params)) != run_sync(tuned.generate(CHATS, params))
    assert tuned.identity()["adapter"] and "adapter" not in plain.identity()


def test_bad_specs_and_paths_fail_with_one_clear_line(tmp_path):
    with pytest.raises(RolecraftError, match="unknown model 'gpt4'"):
        parse_spec("gpt4")
    with pytest.raises(RolecraftError, match="unknown model 'bogus:x'"):
        load_model("bogus:x")
    with pytest.raises(RolecraftError, match="not a LoRA adapter folder"):
        load_model(f"hf:{tmp_path}@{tmp_path}")
    missing = load_model(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(RolecraftError, match="neither a local folder nor in the Hugging Face cache"):
        run_sync(missing.generate(CHATS[:1], SamplingParams(max_tokens=2)))


def test_vllm_is_optional():
    # vLLM has no CPU wheel: the backend must refuse cleanly, and only when asked for.
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(RolecraftError, match="needs vLLM"):
            load_model("vllm:/models/x")
    else:
        pytest.skip("vLLM is installed here; covered on GPU machines")


# -- the samplers front ends send, and log-probabilities ------------------------------------------

GREEDY = SamplingParams(max_tokens=12, temperature=0)


def test_top_k_1_min_p_1_and_a_tiny_temperature_all_decode_greedily(tiny):
    [greedy] = run_sync(tiny.generate(CHATS[1:], GREEDY))
    for sampler in ({"top_k": 1}, {"min_p": 1.0}, {"temperature": 1e-6}):
        params = SamplingParams(max_tokens=12, temperature=1.0, seed=5).model_copy(update=sampler)
        assert run_sync(tiny.generate(CHATS[1:], params))[0].text == greedy.text, sampler
    assert run_sync(tiny.generate(CHATS[1:], SamplingParams(max_tokens=12, temperature=1.0, seed=5)))[0].text != greedy.text


def test_penalties_and_logit_bias_change_what_greedy_decoding_picks(tiny):
    [greedy] = run_sync(tiny.generate(CHATS[1:], GREEDY.model_copy(update={"logprobs": 0})))
    assert len(set(greedy.text)) <= 2  # the random tiny model repeats itself
    for sampler in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}):
        assert run_sync(tiny.generate(CHATS[1:], GREEDY.model_copy(update=sampler)))[0].text != greedy.text, sampler
    first = greedy.logprobs[0].token
    ids = tiny.tokenizer(first, add_special_tokens=False)["input_ids"]
    [banned] = run_sync(tiny.generate(CHATS[1:], GREEDY.model_copy(update={"logit_bias": {ids[0]: -100}, "logprobs": 0})))
    assert first not in [t.token for t in banned.logprobs]
    [forced] = run_sync(tiny.generate(CHATS[1:], GREEDY.model_copy(update={"logit_bias": {ids[0] + 1: 100}, "logprobs": 0})))
    assert {t.token for t in forced.logprobs} == {tiny.tokenizer.decode([ids[0] + 1])}  # +100: that token only


def test_logprobs_spell_the_text_whole_and_streamed(tiny):
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=2, logprobs=3)
    [whole] = run_sync(tiny.generate(CHATS[1:], params))
    assert "".join(t.token for t in whole.logprobs) == whole.text and len(whole.logprobs) == whole.completion_tokens
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in whole.logprobs)
    assert all(t.top_logprobs[0].logprob >= t.logprob for t in whole.logprobs)

    async def pieces():
        return [c async for c in tiny.stream(CHATS[1], params)]

    chunks = run_sync(pieces())
    assert "".join(c.text for c in chunks) == whole.text
    assert [t for c in chunks for t in c.logprobs or []] == whole.logprobs
    assert chunks[-1].completion_tokens == whole.completion_tokens and chunks[-1].finish_reason == whole.finish_reason


def test_a_stop_string_cuts_text_and_logprobs_together(tiny):
    params = SamplingParams(max_tokens=20, temperature=1.0, seed=3, logprobs=0)
    free = run_sync(tiny.generate(CHATS[:1], params))[0].text
    stop = free[len(free) // 2 : len(free) // 2 + 2]
    [cut] = run_sync(tiny.generate(CHATS[:1], params.model_copy(update={"stop": [stop]})))
    assert cut.text == free[: free.index(stop)] and "".join(t.token for t in cut.logprobs) == cut.text
