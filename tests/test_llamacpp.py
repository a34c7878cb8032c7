"""The llama.cpp backend on the embedded SmolLM2: the ChatModel contract, schemas, samplers, determinism
and PEFT adapters that act as they do on transformers."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import pytest
from pydantic import BaseModel

from rolecraft.llm import Message, SamplingParams, load_model, run_sync
from rolecraft.llm.llamacpp import LlamaCppChatModel, closed
from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
]
CAPITAL = [[Message(role="user", content="Name the capital of France.")]]
GREEDY = SamplingParams(max_tokens=12, temperature=0)


@pytest.fixture(scope="module")
def model() -> LlamaCppChatModel:
    model = load_model("embedded", batch_size=4)
    assert isinstance(model, LlamaCppChatModel)
    return model


def chat(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_prompts_render_and_tokenize_exactly_as_with_transformers(model):
    hf = load_model(f"hf:{_checkpoint()}")
    conversations = [
        chat("What is the capital of France?"),
        [Message(role="system", content="You are Mira — “quoted” 日本語 🙂"), Message(role="user", content=" hi\n\nthere "),
         Message(role="assistant", content="Hello!"), Message(role="user", content="<|im_start|> tricky")],
    ]
    for conversation in conversations:
        text = hf.render(conversation)
        assert model.render(conversation) == text
        assert model.weights.tokenize(text) == hf.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_the_pipelines_schemas_always_give_valid_json(model):
    """The build's four schemas at its token budgets, all requests in one continuous batch: every
    answer validates; only the statements (strings without a length bound) may run out of tokens."""
    from rolecraft.eval.judges import reasoning_chars, verdict_schema
    from rolecraft.llm.structured import token_limit
    from rolecraft.synth.experiences import ExperienceSettings, script_schema
    from rolecraft.synth.scenes import scene_list
    from rolecraft.synth.statements import statement_list

    bounded = [scene_list(2), script_schema(ExperienceSettings.tiny()), verdict_schema("score7", reasoning_chars(128))]
    budgets = [(s, token_limit(s)) for s in bounded] + [(statement_list(4), 192)]
    prompt = "Mira Voss keeps the lighthouse on Gull Rock. Write about her. Answer in JSON."

    async def ask(schema, budget):
        params = SamplingParams(max_tokens=budget, temperature=0.7, seed=3)
        return schema, await model.generate([chat(prompt), chat(prompt + " Be brief.")], params, schema=schema.model_json_schema())

    async def everything():
        return await asyncio.gather(*(ask(s, b) for s, b in budgets))

    for schema, out in run_sync(everything()):
        for completion in out:
            if completion.finish_reason == "length":
                assert schema not in bounded, completion.text
                continue
            schema.model_validate_json(completion.text)  # raises if not valid
            assert completion.completion_tokens > 0


def test_objects_are_closed_to_the_listed_properties():
    class Pet(BaseModel):
        name: str

    schema = closed({"type": "object", "properties": {"pets": {"type": "array", "items": Pet.model_json_schema()}}})
    assert schema["additionalProperties"] is False and schema["properties"]["pets"]["items"]["additionalProperties"] is False
    assert closed({"type": "object", "properties": {}, "additionalProperties": True})["additionalProperties"] is True


def test_same_request_same_output_in_fresh_instances_and_any_batch(model):
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=11)
    prompts = [chat("Tell me a story about a dragon."), chat("Describe the sea."), chat("Why is the sky blue?")]
    first = run_sync(model.generate(prompts, params))
    other = LlamaCppChatModel(model.name, batch_size=2, threads=1)  # other slots and threads, its own context
    assert [c.text for c in run_sync(other.generate(prompts, params))] == [c.text for c in first]
    [alone] = run_sync(other.generate([prompts[1]], params))
    assert alone.text == first[1].text
    reseeded = run_sync(model.generate(prompts, params.model_copy(update={"seed": 12})))
    assert [c.text for c in reseeded] != [c.text for c in first]
    run_sync(other.aclose())


def test_a_prompt_read_partly_from_another_requests_cache_gives_the_same_output(model):
    """Five requests with one long system prompt on four slots: three copy the first one's cache, the
    fifth reuses a finished slot's. Each output equals the one of a fresh engine that read it whole."""
    system = Message(role="system", content="You are Mira Voss, a lighthouse keeper on a grey island. " * 12)
    questions = ["Who are you?", "What is your work?", "Describe the sea.", "Tell me about storms.", "Any family?"]
    prompts = [[system, Message(role="user", content=q)] for q in questions]
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=3)
    before = model.engine.prompt_tokens_read
    together = run_sync(model.generate(prompts, params))
    read = model.engine.prompt_tokens_read - before
    assert read < sum(c.prompt_tokens for c in together) / 2
    for prompt, reply in zip(prompts, together):
        fresh = LlamaCppChatModel(model.name, batch_size=1)
        assert run_sync(fresh.generate([prompt], params))[0].text == reply.text
        assert fresh.engine.prompt_tokens_read == reply.prompt_tokens
        run_sync(fresh.aclose())


def test_a_cached_prompt_gives_a_cold_reads_exact_log_probabilities(model):
    """llama.cpp's attention over a short context rounds one query differently from several (the KV
    cache is F16): the same request again, its prompt cached, reads the last two prompt tokens, so its
    log-probabilities equal the cold read's bit for bit (reading only the last one moved them ~0.01)."""
    params = SamplingParams(max_tokens=6, temperature=1.0, seed=5, logprobs=5)
    engine = LlamaCppChatModel(model.name, batch_size=1)
    profile = (REPO / "examples" / "mira-voss.txt").read_text()
    for cut in (200, 300, 600):  # prompts of about 90, 115 and 185 tokens
        prompt = [Message(role="system", content=f"You are Mira Voss.\n\n{profile[:cut]}"), *chat("Tell me who your father is.")]
        [cold] = run_sync(engine.generate([prompt], params))
        before = engine.engine.prompt_tokens_read
        [again] = run_sync(engine.generate([prompt], params))
        assert engine.engine.prompt_tokens_read - before == 2
        assert [(t.token, t.logprob, [a.logprob for a in t.top_logprobs]) for t in again.logprobs] == \
               [(t.token, t.logprob, [a.logprob for a in t.top_logprobs]) for t in cold.logprobs]
    run_sync(engine.aclose())


def test_stop_strings_cut_the_reply_also_when_streamed(model):
    [full] = run_sync(model.generate(CAPITAL, GREEDY))
    assert " is " in full.text
    params = GREEDY.model_copy(update={"stop": [" is "]})
    [cut] = run_sync(model.generate(CAPITAL, params))
    assert cut.text == full.text.split(" is ")[0] and cut.finish_reason == "stop"

    async def streamed():
        return [chunk async for chunk in model.stream(CAPITAL[0], params)]

    chunks = run_sync(streamed())
    assert "".join(c.text for c in chunks) == cut.text
    assert chunks[-1].finish_reason == "stop" and chunks[-1].completion_tokens > 0


def test_a_banned_token_never_appears(model):
    [reply] = run_sync(model.generate(CAPITAL, GREEDY))
    assert "Paris" in reply.text
    banned = {t: -100.0 for t in model.weights.tokenize(" Paris") + model.weights.tokenize("Paris")}
    for params in (GREEDY, SamplingParams(max_tokens=12, temperature=1.5, seed=1)):
        out = run_sync(model.generate(CAPITAL * 3, params.model_copy(update={"logit_bias": banned, "logprobs": 0})))
        assert all(tok.token not in (" Paris", "Paris") for c in out for tok in c.logprobs)


def test_logprobs_match_the_generated_tokens(model):
    [reply] = run_sync(model.generate(CAPITAL, GREEDY.model_copy(update={"logprobs": 3})))
    assert "".join(t.token for t in reply.logprobs) == reply.text
    assert len(reply.logprobs) == reply.completion_tokens
    for token in reply.logprobs:  # greedy: each chosen token is the most likely one
        assert token.top_logprobs[0].token == token.token and token.top_logprobs[0].logprob == token.logprob <= 0
        assert [t.logprob for t in token.top_logprobs] == sorted((t.logprob for t in token.top_logprobs), reverse=True)
    stop = reply.text.strip()[3:6]  # cut inside the reply: the tokens still spell it exactly
    [cut] = run_sync(model.generate(CAPITAL, GREEDY.model_copy(update={"logprobs": 3, "stop": [stop]})))
    assert cut.text == reply.text[: reply.text.index(stop)] and "".join(t.token for t in cut.logprobs) == cut.text


def test_repetition_penalty_changes_a_greedy_reply(model):
    params = SamplingParams(max_tokens=24, temperature=0)
    prompt = [chat("Repeat after me: la la la la la la la la")]
    [plain] = run_sync(model.generate(prompt, params))
    [penalised] = run_sync(model.generate(prompt, params.model_copy(update={"repetition_penalty": 1.5})))
    assert penalised.text != plain.text


def test_every_sampler_is_accepted_and_raw_text_continues(model):
    params = SamplingParams(max_tokens=8, temperature=0.9, top_p=0.9, top_k=40, min_p=0.05, seed=5,
                            frequency_penalty=0.5, presence_penalty=0.5, repetition_penalty=1.1)
    assert run_sync(model.generate(CAPITAL, params))[0].text == run_sync(model.generate(CAPITAL, params))[0].text
    [cont] = run_sync(model.complete(["The capital of France is"], GREEDY))
    assert cont.prompt_tokens == len(model.weights.tokenize("The capital of France is")) and cont.text.strip()
    [short] = run_sync(model.generate(CAPITAL, SamplingParams(max_tokens=2, temperature=0)))
    assert short.finish_reason == "length" and short.completion_tokens == 2


def test_a_caller_that_gives_up_frees_the_engine(model):
    async def give_up():
        task = asyncio.ensure_future(model.generate([chat("Write a long essay about the sea.")], SamplingParams(max_tokens=400)))
        await asyncio.sleep(0.2)
        task.cancel()
        [after] = await model.generate(CAPITAL, GREEDY)
        return after

    assert "Paris" in run_sync(give_up()).text


def test_a_peft_adapter_acts_as_on_transformers(tmp_path):
    """A random LoRA on every linear layer moves llama.cpp's next-token distribution where it moves
    transformers + PEFT's: the same favourite first tokens, log-probabilities within 0.35 of each other
    (llama.cpp rounds activations to 8 bits), while the adapter itself moves them by several nats."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(_checkpoint()), lora).save_pretrained(tmp_path / "adapter")
    adapted = load_model("embedded", adapter=tmp_path / "adapter")
    assert isinstance(adapted, LlamaCppChatModel)
    assert adapted.identity()["adapter"] and adapted.identity() != load_model("embedded").identity()

    hf = load_model(f"hf:{_checkpoint()}")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(_checkpoint()), str(tmp_path / "adapter")).eval()
    params = SamplingParams(max_tokens=1, temperature=0, logprobs=5)
    for prompt in (chat("Name the capital of France."), chat("Who are you?"), chat("Write one line about rain.")):
        ids = hf.tokenizer(hf.render(prompt), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            on_peft = torch.log_softmax(peft(**ids).logits[0, -1], -1)
            on_base = torch.log_softmax(hf.model(**ids).logits[0, -1], -1)
        [reply] = run_sync(adapted.generate([prompt], params))
        assert hf.tokenizer.decode([int(on_peft.argmax())]) == reply.logprobs[0].token
        readable = [t for t in reply.logprobs[0].top_logprobs if "\ufffd" not in t.token]  # not half a character
        best = [hf.tokenizer.convert_tokens_to_ids(hf.tokenizer.tokenize(t.token))[0] for t in readable]
        for token, alternative in zip(best, readable):
            assert abs(float(on_peft[token]) - alternative.logprob) < 0.35, (prompt, alternative)
        assert max(abs(float(on_peft[t] - on_base[t])) for t in best) > 1.0  # the adapter did move them


def test_the_header_reader_reads_what_the_gguf_package_reads(tmp_path):
    """The fast reader that adapter conversion uses, against gguf.GGUFReader on both embedded files;
    a file that is not a whole GGUF gets one line."""
    import gguf

    from rolecraft.errors import RolecraftError
    from rolecraft.llm.embedded import embedded_gguf, embedded_q8
    from rolecraft.llm.gguf_header import model_facts, read_header

    for path in (embedded_gguf(), embedded_q8()):
        header, reader = read_header(path), gguf.GGUFReader(path)
        assert header.tensors == [t.name for t in reader.tensors] and len(header.tensors) == 272
        for key in ("llama.block_count", "llama.context_length", "general.file_type", "general.name", "tokenizer.ggml.model"):
            value = reader.fields[key].contents()
            assert (header.integers if isinstance(value, int) else header.strings)[key] == value
        assert model_facts(header) == ("llama", {"block_count": 30, "head_count": 9, "head_count_kv": 3})
    (tmp_path / "cut.gguf").write_bytes(embedded_q8().read_bytes()[:300_000])  # inside the vocabulary
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(RolecraftError, match="ends inside its GGUF header"):
        read_header(tmp_path / "cut.gguf")
    with pytest.raises(RolecraftError, match="is not a GGUF file"):
        read_header(tmp_path / "text.gguf")


def test_the_first_q8_rewrite_says_nothing_on_the_terminal(tmp_path):
    """A fresh machine's first build rewrites the wheel's GGUF as Q8_0: llama.cpp's ~300 lines of
    loading and quantisation log must not reach the terminal (one progress display, ours)."""
    import os
    import subprocess
    import sys

    code = "from rolecraft.llm.embedded import embedded_q8; print(embedded_q8())"
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {"ROLECRAFT_CACHE": str(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf")
    assert "llama_model" not in done.stderr and done.stderr.strip() == "", done.stderr[:2000]


def _checkpoint():
    from rolecraft.llm.embedded import embedded_checkpoint

    return embedded_checkpoint()


def test_bad_specs_fail_with_one_clear_line(tmp_path):
    from rolecraft.errors import RolecraftError

    with pytest.raises(RolecraftError, match="not a GGUF model file"):
        load_model(f"llamacpp:{tmp_path / 'missing.gguf'}")
    with pytest.raises(RolecraftError, match="not a LoRA adapter folder"):
        load_model("embedded", adapter=tmp_path)
    assert json.loads(json.dumps(load_model("embedded").identity()))["provider"] == "llamacpp"
