"""The report writer (core/report.py)."""

from __future__ import annotations

import base64
import json

import pytest

from tenfold.core.claims import Claim, Relation
from tenfold.core.report import load_report, rerender, write_report

# A 1x1 PNG, enough to check embedding.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _claims():
    return [Claim("qae", "F <= bound", "max F - B", "grape", 1e-12, "bound", 0.0, Relation("<=", 1e-9), (0,), 2.0),
            Claim("qae", "beats DE", "F_enc", "grape", 0.97, "de", 0.99, Relation(">=", 0.0), (0,), 3.0)]


def test_write_report_files(tmp_path):
    (tmp_path / "qae").mkdir()
    (tmp_path / "qae" / "curves.png").write_bytes(PNG)
    meta = {"profile": "quick", "seed": 0, "systems": {"qae": {"status": "ok", "wall_time_s": 5.0}}}
    paths = write_report(tmp_path, _claims(), meta)
    payload = json.loads(paths["claims"].read_text())
    assert [c["verdict"] for c in payload["claims"]] == ["holds", "fails"]
    html = paths["html"].read_text()
    assert html.count('<tr class="holds"') == 1 and html.count('<tr class="fails"') == 1
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in html  # self-contained
    md = paths["summary"].read_text()
    assert "1/2 claims hold" in md and "| qae | beats DE |" in md


def test_rerender_recomputes_from_numbers(tmp_path):
    write_report(tmp_path, _claims(), {"profile": "quick", "seed": 0, "systems": {}})
    payload = json.loads((tmp_path / "claims.json").read_text())
    payload["claims"][1]["baseline_value"] = 0.5  # the number changes ...
    payload["claims"][1]["verdict"] = "holds"     # ... and the stored verdict agrees with it
    (tmp_path / "claims.json").write_text(json.dumps(payload))
    rerender(tmp_path)
    claims, meta = load_report(tmp_path)
    assert [c.verdict for c in claims] == ["holds", "holds"] and meta["profile"] == "quick"


def test_load_report_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="claims.json"):
        load_report(tmp_path)
    (tmp_path / "claims.json").write_text('{"claims": 3}')
    with pytest.raises(ValueError, match="field 'claims' must be a list"):
        load_report(tmp_path)
