"""The line tokeniser of drumlm's baseline C (arXiv 2301.01162, spec component 7's ablation `model_c.tokenizer=line`):
ids by hand, exact round trips of `make_example` records, ~272 tokens per 16-bar piece, the config switch, and a
smoke train + evaluate of C alone over line tokens."""

from __future__ import annotations

import json

import pytest

from tenfold.core.config import ConfigError, load_config, make_config
from tenfold.core.errors import InputError
from tenfold.systems.drumlm.config import PROFILES, Config
from tenfold.systems.drumlm.drumroll import make_example, parse_drumroll
from tenfold.systems.drumlm.tokenizer import LineTokenizer

TOK = LineTokenizer()


def smoke(**over) -> Config:
    return make_config(Config, PROFILES, "smoke", over)


def test_ids_by_hand() -> None:
    # 3 specials, then the 64 lines as 6-bit numbers ('o' = 1, first character = high bit), then SEP, END:
    # "------" = 0 -> 3; "-----o" = 1 -> 4; "o-----" = 32 -> 35; "--o-o-" = 8 + 2 = 10 -> 13; "oooooo" = 63 -> 66;
    # SEP -> 3 + 64 = 67; END -> 68; vocab 69
    assert TOK.vocab_size == 69 and (TOK.pad_id, TOK.bos_id, TOK.eos_id) == (0, 1, 2)
    text = "------\n-----o\no-----\n--o-o-\noooooo\nSEP\nEND"
    assert TOK.encode(text) == [3, 4, 35, 13, 66, 67, 68]
    assert TOK.encode(text, bos=True, eos=True) == [1, 3, 4, 35, 13, 66, 67, 68, 2]
    assert TOK.decode([1, 3, 4, 35, 13, 66, 67, 68, 2, 0]) == text  # specials dropped
    # the newline is implicit: every line but END decodes with its "\n"
    assert TOK.decode([3]) == "------\n" and TOK.decode([67]) == "SEP\n" and TOK.decode([68]) == "END"
    assert TOK.encode("") == [] and TOK.decode([]) == ""


@pytest.mark.parametrize("text, match", [
    ("------\n--x---\n", "--x---"), ("------\nooooo\n", "ooooo"), ("------\n\n", "''"), ("------\nSE\n", "SE"),
    ("------", "no trailing newline"), ("END\n", "after the END"), ("END\n------\n", "after the END")])
def test_refuses_malformed_or_unrecoverable_text(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TOK.encode(text)


def _piece(num_bars: int) -> list[str]:
    """A backbeat: crash on line 0 of each bar, kick on 0 and 8, snare on 4 and 12, hi-hat on even lines."""
    lines = []
    for _ in range(num_bars):
        for i in range(16):
            lines.append("".join("o" if on else "-" for on in (
                i == 0, False, i in (0, 8), i in (4, 12), False, i % 2 == 0)))
    return lines


def test_make_example_round_trip_and_tokens_per_piece() -> None:
    rec = make_example(_piece(16), "p", prompt_bars=2)
    assert rec["prompt"].endswith("SEP\n") and rec["completion"].endswith("\nEND")
    p, c = TOK.encode(rec["prompt"]), TOK.encode(rec["completion"])
    assert TOK.decode(p + c) == rec["prompt"] + rec["completion"]
    assert TOK.decode(p) == rec["prompt"] and TOK.decode(c) == rec["completion"]
    # prompt: 2 bars x 16 lines + 2 SEP = 34; completion: 14 x 16 lines + 13 SEP (the last stripped) + END = 238;
    # 272 in all (spec 2.7: ~273)
    assert (len(p), len(c)) == (34, 238)
    assert c[-1] == TOK.end_id and p[-1] == TOK.sep_id
    # first line of the piece "o-o--o" = 32 + 8 + 1 = 41 -> 44; line 1 "------" -> 3
    assert p[:2] == [44, 3]


def test_unknown_tokenizer_is_a_config_error() -> None:
    assert smoke().model_c.tokenizer == "char"  # the reproduction keeps characters
    assert smoke(**{"model_c.tokenizer": "line"}).model_c.tokenizer == "line"
    with pytest.raises(ConfigError, match=r"model_c\.tokenizer"):
        smoke(**{"model_c.tokenizer": "bpe"})


def test_arm_c_over_line_tokens_budget_and_stop() -> None:
    pytest.importorskip("torch")
    from tenfold.systems.drumlm import lm
    from tenfold.systems.drumlm.arms import build_arm, max_new_for

    cfg = smoke(**{"model_c.tokenizer": "line"})
    arm = build_arm(cfg, "C", 0)
    assert arm.codec.kind == "line" and arm.model.tok_emb.weight.shape[0] == 69
    # smoke: sample.max_new_chars 120 -> ceil(120 / 7) = 18 lines; --bars 2 -> 2 x 23 + 8 = 54; context 512 - 500
    assert max_new_for(arm, cfg, prompt_len=34) == 18 and max_new_for(arm, cfg, 34, bars=2) == 54
    assert max_new_for(arm, cfg, prompt_len=500, bars=2) == 12
    stop = lm.stop_at_end(arm.codec)
    assert stop([3, 67, 68]) and not stop([3, 67, 3])


def test_smoke_train_evaluate_arm_c_over_lines(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("mido")
    from tenfold.systems.drumlm import train as train_mod
    from tenfold.systems.drumlm.arms import load_arm, weights_path
    from tenfold.systems.drumlm.evaluate import evaluate
    from tenfold.systems.drumlm.predict import predict

    from .conftest import backbeat_bar_notes, write_notes

    cfg = smoke(**{"train.arms": ("C",), "train.steps_c": 3, "model_c.tokenizer": "line"})
    run = tmp_path / "run"
    metrics = train_mod.train(cfg, run)
    assert metrics["steps_C"] == 3 and weights_path(run, "C").exists()
    saved = load_config(Config, run / "config.json")  # what eval / predict rebuild the arm from
    assert saved.model_c.tokenizer == "line" and load_arm(saved, run, "C").codec.kind == "line"
    out = evaluate(cfg, run)
    assert "C_nll_per_line" in out
    gens = json.loads((run / "generations" / "C.json").read_text())
    assert len(gens) == 2
    for g in gens:
        lines, report = parse_drumroll(g["text"])
        # line tokens can only write whole, well-formed lines: nothing to repair
        assert report.num_malformed == 0 and len(lines) >= 32
    # predict over line tokens: a 2-bar prompt is 34 tokens; --bars 64 needs 34 + 64 x 23 > 512 (smoke context),
    # which holds (512 - 34) // 23 = 20 new bars
    notes = [n for bar in range(2) for n in backbeat_bar_notes(bar)]
    prompt = write_notes(tmp_path / "prompt.mid", notes, bpm=100)
    with pytest.raises(InputError, match="512 lines holds at most 20 new bars"):
        predict(run, prompt, tmp_path / "big.mid", bars=64)
    res = predict(run, prompt, tmp_path / "cont.mid", bars=2)
    assert res["arm"] == "C" and res["malformed_lines"] == 0 and res["input_bars"] == 2
