"""The report writer: claims.json, summary.md and a self-contained index.html.

Layout of a report directory (`tenfold reproduce --out DIR`, default reports/latest):
    claims.json      {"profile", "seed", "created", "systems": {key: facts}, "claims": [rows]}
    summary.md       the claim table in Markdown
    index.html       the claim table and every system's plots, PNGs embedded as data URIs
    <key>/*.png      plots written by each system's `reproduce`
`tenfold report DIR` re-renders summary.md and index.html from claims.json and the PNGs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any

from tenfold.core.claims import Claim
from tenfold.core.runs import atomic_write_text


def write_report(out_dir: Path, claims: list[Claim], meta: dict[str, Any]) -> dict[str, Path]:
    """Write claims.json, summary.md and index.html into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "claims": [c.to_dict() for c in claims]}
    payload.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    paths = {"claims": out_dir / "claims.json", "summary": out_dir / "summary.md",
             "html": out_dir / "index.html"}
    atomic_write_text(paths["claims"], json.dumps(payload, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["summary"], render_markdown(claims, payload))
    atomic_write_text(paths["html"], render_html(claims, payload, out_dir))
    return paths


def load_report(out_dir: Path) -> tuple[list[Claim], dict[str, Any]]:
    """Read claims.json back; verdicts are recomputed from the numbers."""
    path = Path(out_dir) / "claims.json"
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no claims.json; run `tenfold reproduce --out {out_dir}` first") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("claims"), list):
        raise ValueError(f"{path}: field 'claims' must be a list of claim rows")
    claims = [Claim.from_dict(d) for d in payload["claims"]]
    meta = {k: v for k, v in payload.items() if k != "claims"}
    return claims, meta


def rerender(out_dir: Path) -> dict[str, Path]:
    claims, meta = load_report(out_dir)
    return write_report(out_dir, claims, meta)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def render_markdown(claims: list[Claim], meta: dict[str, Any]) -> str:
    held = sum(c.verdict == "holds" for c in claims)
    lines = [f"# tenfold reproduction ({meta.get('profile', '?')} profile, seed {meta.get('seed', '?')})", "",
             f"{held}/{len(claims)} claims hold. Created {meta.get('created', '')}.", ""]
    for key, facts in meta.get("systems", {}).items():
        status = facts.get("status", "ok")
        extra = f" — error: {facts['error']}" if status != "ok" else ""
        lines.append(f"- `{key}`: {status}, {facts.get('wall_time_s', float('nan')):.1f} s{extra}")
    lines += ["", "| system | claim | metric | method | value | baseline | value | expected | verdict | seeds | time (s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in claims:
        cells = [c.system, c.claim, c.metric, c.method, _fmt(c.method_value), c.baseline, _fmt(c.baseline_value),
                 f"`{c.expected}`", f"**{c.verdict}**", ",".join(map(str, c.seeds)), f"{c.wall_time_s:.1f}"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")  # GitHub tables
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1b1b;max-width:1400px}
h1{font-size:1.5rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.85rem} th,td{border:1px solid #ccc;padding:.3rem .45rem;
text-align:left;vertical-align:top} th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.holds td.verdict{background:#dff3df;font-weight:600} tr.fails td.verdict{background:#f8d7d7;font-weight:600}
code{font-size:.8rem} .meta{color:#555} figure{display:inline-block;vertical-align:top;margin:.5rem;max-width:48%}
figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:.8rem;color:#555}
"""


def render_html(claims: list[Claim], meta: dict[str, Any], out_dir: Path) -> str:
    esc = html.escape
    held = sum(c.verdict == "holds" for c in claims)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>tenfold reproduction report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>tenfold reproduction report</h1>",
             f'<p class="meta">profile <b>{esc(str(meta.get("profile", "?")))}</b>, seed '
             f'<b>{esc(str(meta.get("seed", "?")))}</b>, created {esc(str(meta.get("created", "")))}. '
             f"<b>{held}/{len(claims)}</b> claims hold.</p>"]
    parts.append("<table><thead><tr>" + "".join(
        f"<th>{h}</th>" for h in ("system", "claim", "metric", "method", "value", "baseline", "value",
                                  "expected", "verdict", "seeds", "time (s)")) + "</tr></thead><tbody>")
    for c in claims:
        title = f' title="{esc(c.details)}"' if c.details else ""
        parts.append(
            f'<tr class="{c.verdict}"{title}><td>{esc(c.system)}</td><td>{esc(c.claim)}</td><td>{esc(c.metric)}</td>'
            f'<td>{esc(c.method)}</td><td class="num">{_fmt(c.method_value)}</td><td>{esc(c.baseline)}</td>'
            f'<td class="num">{_fmt(c.baseline_value)}</td><td><code>{esc(c.expected)}</code></td>'
            f'<td class="verdict">{c.verdict}</td><td>{esc(",".join(map(str, c.seeds)))}</td>'
            f'<td class="num">{c.wall_time_s:.1f}</td></tr>')
    parts.append("</tbody></table>")
    for key, facts in meta.get("systems", {}).items():
        parts.append(f"<h2>{esc(key)}</h2>")
        status = facts.get("status", "ok")
        parts.append(f'<p class="meta">{esc(status)}, {facts.get("wall_time_s", 0.0):.1f} s'
                     + (f' — error: {esc(str(facts.get("error")))}' if status != "ok" else "") + "</p>")
        for png in sorted((Path(out_dir) / key).glob("*.png")):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{esc(png.stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(png.name)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
