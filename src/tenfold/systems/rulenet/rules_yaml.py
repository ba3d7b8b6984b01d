"""Rule files in YAML (issue 20), translated to the rule language of rules.py and parsed by its parser.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693.
Design choice: YAML is a second spelling of the same rules, not a second language: every entry becomes one line
of the text grammar (rules.py docstring), so the semantics, limits and export are the same.

    define:                       # optional: name -> formula
      dT: T_proc - T_air
    default: ok                   # optional
    rules:
      - class: failure
        when: dT < 8.6 & rpm < 1380          # one string, or a list of atoms (AND-ed)
      - class: failure
        when: [strain > 11000, grade == L]
        weight: 0.9                          # optional, in [0, 1]

Read with a safe loader that refuses aliases (no YAML "billion laughs"); an entry of the wrong type or one that does
not parse is an InputError naming the file and the entry (`rules[2].when`).
"""

from __future__ import annotations

from typing import Any

from tenfold.core.errors import InputError
from tenfold.systems.rulenet.rules import RuleParseError, RuleSet, parse_rules

YAML_SUFFIXES = (".yaml", ".yml")
FORM = ("a mapping with 'rules' (a list of {class, when, weight}), optional 'define' (name: formula) and "
        "'default' (a class name)")


def _load(text: str, source: str) -> Any:
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"an alias (*name) at line {mark.line + 1}; aliases are not allowed")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise InputError(f"{source}: not valid YAML ({' '.join(str(err).split())[:300]}); expected {FORM}") from None


def _scalar(value: Any, where: str, source: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{source}: {where} is {type(value).__name__}; expected a string")
    text = str(value)
    if "\n" in text or "#" in text:
        raise InputError(f"{source}: {where} contains a line break or '#'; expected one line")
    return text


def yaml_to_text(text: str, source: str) -> tuple[str, list[str]]:
    """(rule-language text, the YAML entry of each of its lines)."""
    doc = _load(text, source)
    if not isinstance(doc, dict) or "rules" not in doc:
        raise InputError(f"{source}: expected {FORM}")
    unknown = sorted(set(map(str, doc)) - {"define", "default", "rules"})
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r}; expected {FORM}")
    lines, where = [], []
    defines = doc.get("define") or {}
    if not isinstance(defines, dict):
        raise InputError(f"{source}: define is {type(defines).__name__}; expected a mapping name: formula")
    for name, formula in defines.items():
        lines.append(f"define {_scalar(name, 'define key', source)} = {_scalar(formula, f'define.{name}', source)}")
        where.append(f"define.{name}")
    if doc.get("default") is not None:
        lines.append(f"default : {_scalar(doc['default'], 'default', source)}")
        where.append("default")
    if not isinstance(doc["rules"], list) or not doc["rules"]:
        raise InputError(f"{source}: rules is {type(doc['rules']).__name__}; expected a non-empty list")
    for i, rule in enumerate(doc["rules"]):
        at = f"rules[{i}]"
        if not isinstance(rule, dict) or "class" not in rule or "when" not in rule:
            raise InputError(f"{source}: {at} must be a mapping with 'class' and 'when'; expected {FORM}")
        extra = sorted(set(map(str, rule)) - {"class", "when", "weight"})
        if extra:
            raise InputError(f"{source}: {at} has the unknown key {extra[0]!r}; expected class, when, weight")
        when = rule["when"] if isinstance(rule["when"], list) else [rule["when"]]
        if not when:
            raise InputError(f"{source}: {at}.when is empty; expected at least one atom")
        atoms = " & ".join(_scalar(a, f"{at}.when[{j}]", source) for j, a in enumerate(when))
        weight = "" if rule.get("weight") is None else f" @ {_scalar(rule['weight'], f'{at}.weight', source)}"
        lines.append(f"{_scalar(rule['class'], f'{at}.class', source)} : {atoms}{weight}")
        where.append(at)
    return "\n".join(lines) + "\n", where


def parse_yaml_rules(text: str, source: str) -> RuleSet:
    """Parse a YAML rule file; a parse error names the YAML entry of the failing line."""
    rule_text, where = yaml_to_text(text, source)
    try:
        return parse_rules(rule_text, source="yaml")
    except RuleParseError as err:
        msg = str(err).removeprefix("yaml: ")
        lines = rule_text.splitlines()
        for lineno, entry in enumerate(where, start=1):
            if msg.startswith(f"line {lineno}:") or msg.startswith(f"line {lineno},"):
                raise RuleParseError(f"{source}: {entry} (read as {lines[lineno - 1]!r}): "
                                     f"{msg.split(':', 1)[1].strip()}") from None
        raise RuleParseError(f"{source}: {msg}") from None
