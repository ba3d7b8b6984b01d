"""The report writer: claims.json, summary.md and a self-contained index.html.

Layout of a report directory (`tenfold reproduce --out DIR`, default reports/latest):
    claims.json              {"profile", "seeds", "created", "systems": {key: facts}, "counts", "claims": [rows]}
    summary.md               claims, then checks, in Markdown
    index.html               the same tables with per-seed points, and every system's plots (PNGs embedded)
    <key>/seed-<s>/rows.json one seed's measurements (the resume cache of `tenfold reproduce`)
    <key>/seed-<s>/*.png     plots written by that seed's `reproduce`
`tenfold report DIR` re-renders summary.md and index.html from claims.json and the PNGs. Rows are
checked on load: the verdict is recomputed from the numbers and each row's digest must match.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from tenfold.core.claims import Claim, counts, mean_std, summary_line
from tenfold.core.runs import atomic_write_text

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def write_report(out_dir: Path, claims: list[Claim], meta: dict[str, Any]) -> dict[str, Path]:
    """Write claims.json, summary.md and index.html into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "counts": counts(claims), "claims": [c.to_dict() for c in claims]}
    payload.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    paths = {"claims": out_dir / "claims.json", "summary": out_dir / "summary.md",
             "html": out_dir / "index.html"}
    atomic_write_text(paths["claims"], json.dumps(payload, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["summary"], render_markdown(claims, payload))
    atomic_write_text(paths["html"], render_html(claims, payload, out_dir))
    return paths


def load_report(out_dir: Path) -> tuple[list[Claim], dict[str, Any]]:
    """Read claims.json back; verdicts are recomputed from the numbers and the digests checked."""
    path = Path(out_dir) / "claims.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no claims.json; run `tenfold reproduce --out {out_dir}` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid UTF-8 JSON ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("claims"), list):
        raise ValueError(f"{path}: field 'claims' must be a list of claim rows")
    if not all(isinstance(d, dict) for d in payload["claims"]):
        raise ValueError(f"{path}: field 'claims' must hold objects (one per row)")
    claims = []
    for i, d in enumerate(payload["claims"]):
        try:
            claims.append(Claim.from_dict(d))
        except ValueError as err:
            raise ValueError(f"{path}: row {i}: {err}") from None
    meta = {k: v for k, v in payload.items() if k not in ("claims", "counts")}
    systems = meta.get("systems", {})
    if not isinstance(systems, dict) or not all(isinstance(k, str) and _KEY.match(k) for k in systems):
        raise ValueError(f"{path}: field 'systems' must map system keys (lowercase names) to their facts")
    return claims, meta


def rerender(out_dir: Path) -> dict[str, Path]:
    claims, meta = load_report(out_dir)
    return write_report(out_dir, claims, meta)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _budget_text(c: Claim) -> str:
    parts = [f"{arm}: " + ", ".join(f"{k} {v}" for k, v in entries.items()) for arm, entries in c.budget.items()]
    text = "; ".join(parts)
    if c.unequal_budget:
        text += " — UNEQUAL: " + "; ".join(c.unequal_budget)
    return text


def _values(xs: tuple[float, ...]) -> str:
    return ", ".join(_fmt(x) for x in xs)


def _seeds_text(meta: dict[str, Any]) -> str:
    seeds = meta.get("seeds", meta.get("seed", "?"))
    return ", ".join(map(str, seeds)) if isinstance(seeds, list) else str(seeds)


def render_markdown(claims: list[Claim], meta: dict[str, Any]) -> str:
    lines = [f"# tenfold reproduction ({meta.get('profile', '?')} profile, seeds {_seeds_text(meta)})", "",
             f"{summary_line(claims)}. Created {meta.get('created', '')}.", ""]
    for key, facts in meta.get("systems", {}).items():
        status = facts.get("status", "ok")
        extra = f" — error: {facts['error']}" if status != "ok" else ""
        dev = f" — development seeds among the claim seeds: {facts['dev_seeds_used']}" if facts.get("dev_seeds_used") else ""
        lines.append(f"- `{key}`: {status}, {facts.get('wall_time_s', float('nan')):.1f} s{extra}{dev}")
    for kind, title in (("claim", "Claims"), ("check", "Checks (guarantees of the code, not counted as claims)")):
        rows = [c for c in claims if c.kind == kind]
        if not rows:
            continue
        lines += ["", f"## {title}", "",
                  "| system | claim | metric | method | mean ± std (per seed) | baseline | mean ± std (per seed) | "
                  "reference | expected | verdict | budgets | seeds | time (s) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in rows:
            ref = f"{c.reference}: {mean_std(c.reference_values)}" if c.reference else ""
            cells = [c.system, c.claim, c.metric, c.method, f"{mean_std(c.method_values)} ({_values(c.method_values)})",
                     c.baseline, f"{mean_std(c.baseline_values)} ({_values(c.baseline_values)})", ref,
                     f"`{c.expected}`", f"**{c.verdict}** ({c.reason})", _budget_text(c),
                     ",".join(map(str, c.seeds)), f"{c.wall_time_s:.1f}"]
            lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    """A table cell: pipes escaped, HTML made inert (summary.md may be rendered by a Markdown viewer)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1b1b;max-width:1500px}
h1{font-size:1.5rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.82rem} th,td{border:1px solid #ccc;padding:.3rem .45rem;
text-align:left;vertical-align:top} th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.holds td.verdict{background:#dff3df;font-weight:600} tr.fails td.verdict{background:#f8d7d7;font-weight:600}
tr.inconclusive td.verdict{background:#fff1c9;font-weight:600} .reason{font-weight:400;font-size:.75rem;color:#555}
.warn{color:#a12} code{font-size:.78rem} .meta{color:#555} figure{display:inline-block;vertical-align:top;margin:.5rem;
max-width:48%} figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:.8rem;color:#555}
.legend span{margin-right:1rem}
"""
_COLORS = {"method": "#1f77b4", "baseline": "#ff7f0e", "reference": "#7f7f7f"}


def seed_strip(c: Claim, width: int = 160, height: int = 34) -> str:
    """An inline SVG: each seed's value per arm as a dot on one shared axis (method, baseline, reference)."""
    arms = [("method", c.method_values), ("baseline", c.baseline_values), ("reference", c.reference_values)]
    values = [x for _, xs in arms for x in xs if math.isfinite(x)]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or max(abs(hi), 1.0) * 1e-9 or 1.0
    pad = 6

    def xpos(v: float) -> float:
        return pad + (v - lo) / span * (width - 2 * pad)

    dots = []
    for row, (arm, xs) in enumerate(arms):
        y = 7 + row * 10
        for x in xs:
            if math.isfinite(x):
                dots.append(f'<circle cx="{xpos(x):.1f}" cy="{y}" r="3" fill="{_COLORS[arm]}" fill-opacity=".75">'
                            f"<title>{arm} {_fmt(x)}</title></circle>")
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="per-seed values">'
            f'<line x1="{pad}" y1="{height - 2}" x2="{width - pad}" y2="{height - 2}" stroke="#bbb"/>'
            + "".join(dots) + "</svg>")


def _html_rows(rows: list[Claim]) -> list[str]:
    esc = html.escape
    out = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in (
        "system", "claim", "metric", "method", "mean ± std", "baseline", "mean ± std", "reference", "per seed",
        "expected", "verdict", "budgets", "seeds", "time (s)")) + "</tr></thead><tbody>"]
    for c in rows:
        title = f' title="{esc(c.details)}"' if c.details else ""
        ref = f"{esc(c.reference)}<br>{esc(mean_std(c.reference_values))}" if c.reference else ""
        budget = esc(_budget_text(c)).replace("UNEQUAL", '<span class="warn">UNEQUAL</span>')
        out.append(
            f'<tr class="{c.verdict}"{title}><td>{esc(c.system)}</td><td>{esc(c.claim)}</td><td>{esc(c.metric)}</td>'
            f'<td>{esc(c.method)}</td><td class="num" title="{esc(_values(c.method_values))}">'
            f"{esc(mean_std(c.method_values))}</td><td>{esc(c.baseline)}</td>"
            f'<td class="num" title="{esc(_values(c.baseline_values))}">{esc(mean_std(c.baseline_values))}</td>'
            f"<td>{ref}</td><td>{seed_strip(c)}</td><td><code>{esc(c.expected)}</code></td>"
            f'<td class="verdict">{c.verdict}<div class="reason">{esc(c.reason)}</div></td><td>{budget}</td>'
            f'<td>{esc(",".join(map(str, c.seeds)))}</td><td class="num">{c.wall_time_s:.1f}</td></tr>')
    out.append("</tbody></table>")
    return out


def render_html(claims: list[Claim], meta: dict[str, Any], out_dir: Path) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>tenfold reproduction report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>tenfold reproduction report</h1>",
             f'<p class="meta">profile <b>{esc(str(meta.get("profile", "?")))}</b>, seeds '
             f'<b>{esc(_seeds_text(meta))}</b>, created {esc(str(meta.get("created", "")))}. '
             f"<b>{esc(summary_line(claims))}</b>. A verdict follows the noise rule of the README: "
             "holds only beyond a one-sided paired t-test at 5 % and beyond the tie tolerance.</p>",
             '<p class="legend">per-seed points: ' + "".join(
                 f'<span style="color:{col}">● {arm}</span>' for arm, col in _COLORS.items()) + "</p>"]
    for kind, title in (("claim", "Claims"), ("check", "Checks (guarantees of the code; not counted as claims)")):
        rows = [c for c in claims if c.kind == kind]
        if rows:
            parts.append(f"<h2>{title}</h2>")
            parts += _html_rows(rows)
    for key, facts in meta.get("systems", {}).items():
        parts.append(f"<h2>{esc(key)}</h2>")
        status = facts.get("status", "ok")
        parts.append(f'<p class="meta">{esc(str(status))}, {float(facts.get("wall_time_s", 0.0)):.1f} s'
                     + (f' — error: {esc(str(facts.get("error")))}' if status != "ok" else "") + "</p>")
        for png in _plots(out_dir, key, facts):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{esc(png.stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(png.parent.name)}/{esc(png.name)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _plots(out_dir: Path, key: str, facts: dict[str, Any]) -> list[Path]:
    """The PNGs of a system's first seed; only files inside the report directory are ever read."""
    if not _KEY.match(key):
        return []
    root = Path(out_dir).resolve()
    seeds = facts.get("seeds") or []
    folder = (root / key / f"seed-{int(seeds[0])}") if seeds and isinstance(seeds[0], int) else root / key
    pngs = []
    for png in sorted(folder.glob("*.png")):
        real = png.resolve()
        if real.is_file() and real.is_relative_to(root):
            pngs.append(real)
    return pngs
