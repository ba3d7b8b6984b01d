"""The report writer (core/report.py)."""

from __future__ import annotations

import base64
import json

import pytest

from tenfold.core.claims import Measurement, Relation, aggregate
from tenfold.core.report import load_report, rerender, write_report

# A 1x1 PNG, enough to check embedding.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _claims():
    rows = []
    for s in (1, 2, 3):
        rows += [Measurement("qae", "F <= bound", "max F - B", "grape", 1e-12, "bound", 0.0, Relation("<=", 1e-9), s,
                             2.0, kind="check"),
                 Measurement("qae", "beats DE", "F_enc", "grape", 0.97, "de", 0.99 + s / 1000, Relation(">="), s, 3.0,
                             reference="zero controls", reference_value=0.5,
                             budget={"method": {"evaluations": 400}, "baseline": {"evaluations": 10_000}})]
    return aggregate(rows)


def _meta():
    return {"profile": "quick", "seeds": [1, 2, 3],
            "systems": {"qae": {"status": "ok", "wall_time_s": 5.0, "seeds": [1, 2, 3]}}}


def test_write_report_files(tmp_path):
    (tmp_path / "qae" / "seed-1").mkdir(parents=True)
    (tmp_path / "qae" / "seed-1" / "curves.png").write_bytes(PNG)
    paths = write_report(tmp_path, _claims(), _meta())
    payload = json.loads(paths["claims"].read_text())
    assert [c["verdict"] for c in payload["claims"]] == ["holds", "fails"]
    assert payload["counts"] == {"holds": 0, "fails": 1, "inconclusive": 0, "claims": 1, "checks": 1,
                                 "checks_failed": 0}
    html = paths["html"].read_text()
    assert html.count('<tr class="holds"') == 1 and html.count('<tr class="fails"') == 1
    assert html.index("<h2>Claims</h2>") < html.index("<h2>Checks")
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in html  # self-contained
    assert html.count("<circle") == 3 * 3 + 3 * 2  # per-seed points: method, baseline, reference / 2 arms
    assert "UNEQUAL" in html and "evaluations: 400 vs 10000" in html
    md = paths["summary"].read_text()
    assert "claims: 0 holds / 1 fails / 0 inconclusive (of 1); checks: 1/1 pass" in md
    assert "| qae | beats DE |" in md and "## Checks" in md and "zero controls: 0.5 ± 0" in md


def test_rerender_recomputes_and_catches_edits(tmp_path):
    write_report(tmp_path, _claims(), _meta())
    payload = json.loads((tmp_path / "claims.json").read_text())
    payload["claims"][1]["baseline_values"] = [0.5, 0.5, 0.5]  # the numbers change ...
    (tmp_path / "claims.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="digest|disagrees"):  # ... and the row's digest no longer matches
        rerender(tmp_path)
    write_report(tmp_path, _claims(), _meta())
    rerender(tmp_path)
    claims, meta = load_report(tmp_path)
    assert [c.verdict for c in claims] == ["holds", "fails"] and meta["profile"] == "quick"


def test_load_report_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="claims.json"):
        load_report(tmp_path)
    (tmp_path / "claims.json").write_text('{"claims": 3}')
    with pytest.raises(ValueError, match="field 'claims' must be a list"):
        load_report(tmp_path)


def test_plots_are_read_only_from_inside_the_report(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(PNG)
    rep = tmp_path / "rep"
    write_report(rep, _claims(), _meta())
    payload = json.loads((rep / "claims.json").read_text())
    payload["systems"] = {"../outside": {"status": "ok", "wall_time_s": 1.0}}
    (rep / "claims.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="systems"):
        rerender(rep)
    (rep / "qae" / "seed-1").mkdir(parents=True)
    (rep / "qae" / "seed-1" / "link.png").symlink_to(outside / "secret.png")  # a link that leaves the report
    write_report(rep, _claims(), _meta())
    assert "data:image/png" not in (rep / "index.html").read_text()


def test_markdown_keeps_html_inert(tmp_path):
    rows = aggregate([Measurement("qae", "<script>x</script>", "m", "a", 1.0, "b", 0.0, Relation(">"), s, 1.0)
                      for s in (1, 2)])
    paths = write_report(tmp_path, rows, _meta())
    assert "<script>" not in paths["summary"].read_text() and "<script>" not in paths["html"].read_text()
