"""Rule files in YAML (issue 20): the same RuleSet as the rule language, errors naming the entry."""

from __future__ import annotations

import pytest

from tenfold.core.errors import InputError
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet.rules import parse_rules, read_rules

YAML = """\
define:
  dT: T_proc - T_air
  power: torque * rpm * 2 * pi / 60
  strain: wear * torque
default: ok
rules:
  - class: failure
    when: dT < 9.4 & rpm < 1300
  - class: failure
    when: [power < 3100]
  - class: failure
    when: [power > 9600]
  - class: failure
    when: [strain > 10000, grade == L]
  - class: failure
    when: [strain > 11000, grade == M]
  - class: failure
    when: [strain > 12500, grade == H]
    weight: 0.75
"""


def test_yaml_rules_equal_the_rule_language(tmp_path):
    (tmp_path / "r.yaml").write_text(YAML)
    expected = parse_rules(D.NOISY_EXPERT_RULES.replace("grade == H", "grade == H @ 0.75"))
    got = read_rules(tmp_path / "r.yaml")
    assert got.text() == expected.text()
    assert [r.weight for r in got.rules] == [1, 1, 1, 1, 1, 0.75]


@pytest.mark.parametrize("text, names", [
    ("rules: 3\n", ["rules is int"]),
    ("- a\n- b\n", ["expected a mapping with 'rules'"]),
    ("rules:\n  - class: failure\n", ["rules[0] must be a mapping with 'class' and 'when'"]),
    ("rules:\n  - class: failure\n    when: [power <]\n", ["rules[0] (read as 'failure : power <')",
                                                         "expected a number"]),
    ("rules:\n  - class: failure\n    when: power < 3\n    weight: 2\n", ["rules[0]", "weight must be in [0, 1]"]),
    ("rules:\n  - class: failure\n    when: power < 3\n    wieght: 1\n", ["unknown key 'wieght'"]),
    ("define: {a: [1, 2]}\nrules: [{class: f, when: a < 1}]\n", ["define.a is list"]),
    ("rules:\n  - class: failure\n    when: 'power < 3 # x'\n", ["contains a line break or '#'"]),
    ("a: &x [1, 2]\nb: *x\nrules: [{class: f, when: p < 1}]\n", ["alias", "not allowed"]),
    ("rules: [\n", ["not valid YAML"]),
])
def test_bad_yaml_rules_name_file_and_entry(tmp_path, text, names):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_rules(path)
    assert str(path) in str(err.value)
    for name in names:
        assert name in str(err.value)


def test_cli_refuses_a_bad_yaml_rule_file_before_writing(tmp_path, capsys):
    from tests.badinput import assert_refused

    obs, items = D.items_to_frames(D.make_machining(40, 5, M=4))
    obs.to_csv(tmp_path / "obs.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "rules.yaml").write_text("rules:\n  - class: failure\n    when: [torq > 3]\n")
    out = tmp_path / "run"
    assert_refused(["train", "rulenet", "--profile", "smoke", "--set", f"data.observations={tmp_path / 'obs.csv'}",
                    "--set", f"data.items={tmp_path / 'items.csv'}", "--set", f"data.rules={tmp_path / 'rules.yaml'}",
                    "--out", str(out)], [str(tmp_path / "rules.yaml"), "unknown feature 'torq'"], out, capsys)
