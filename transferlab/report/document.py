"""The report's document model: sections with anchors, a contents list and one table of every claim, written as
one self-contained HTML file (figures embedded) and a Markdown copy."""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from transferlab.analysis.claims import Claim
from transferlab.report.figures import Figure

VERDICT_MARK = {"holds": "✅ holds", "does not hold": "❌ does not hold", "inconclusive": "➖ inconclusive"}
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails", "inconclusive": "open"}
CLAIMS_ANCHOR = "claims"


@dataclass
class Section:
    anchor: str
    title: str
    claims: list[Claim]


@dataclass
class Document:
    title: str
    intro: str = ""  # under the claims table: how verdicts are reached (the same rule for every section)
    # ("section", Section) | ("h", text) | ("p", text) | ("table", DataFrame) | ("fig", Figure)
    blocks: list = field(default_factory=list)

    def section(self, anchor: str, title: str, claims: list[Claim]) -> None:
        """Start a section; its claims join the one claims table at the top, each row linking back here."""
        if anchor in {s.anchor for s in self.sections} | {CLAIMS_ANCHOR, "contents"}:
            raise ValueError(f"duplicate section anchor {anchor!r}")
        self.blocks.append(("section", Section(anchor, title, list(claims))))

    def heading(self, text: str) -> None:
        self.blocks.append(("h", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def figure(self, fig: Figure) -> None:
        self.blocks.append(("fig", fig))

    @property
    def sections(self) -> list[Section]:
        return [v for k, v in self.blocks if k == "section"]

    def claims(self) -> list[Claim]:
        """Every claim in section order (the order of metrics/claims.json)."""
        return [c for s in self.sections for c in s.claims]

    def claim_rows(self) -> list[tuple[Section, Claim]]:
        return [(s, c) for s in self.sections for c in s.claims]

    def counts(self) -> str:
        return counts_line(self.claims())

    def markdown(self, figure_dir: str) -> str:
        out = [f"# {self.title}", "", '<a id="contents"></a>', "", "**Contents**", "",
               f"- [Claims and verdicts](#{CLAIMS_ANCHOR})"]
        out += [f"- [{s.title}](#{s.anchor})" for s in self.sections]
        out += ["", f'<a id="{CLAIMS_ANCHOR}"></a>', "", "## Claims and verdicts", "", f"**{self.counts()}**", "",
                "| claim | verdict | evidence |", "|---|---|---|"]
        out += [f"| [{_md_cell(c.statement)}](#{s.anchor}) | {VERDICT_MARK[c.verdict]} | {_md_cell(c.evidence)} |"
                for s, c in self.claim_rows()]
        out += ["", self.intro, ""] if self.intro else [""]
        for kind, value in self.blocks:
            if kind == "section":
                out += [f'<a id="{value.anchor}"></a>', "", f"## {value.title}", ""]
                if value.claims:
                    out += [f"Claims judged here: {len(value.claims)} "
                            f"(verdicts in [the claims table](#{CLAIMS_ANCHOR})).", ""]
            elif kind == "h":
                out += [f"### {value}", ""]
            elif kind == "p":
                out += [value, ""]
            elif kind == "table":
                cols = list(value.columns)
                out += ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
                out += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in value.itertuples(index=False)]
                out.append("")
            else:
                out += [f"![{value.caption}]({figure_dir}/{value.name}.png)", "", f"*{value.caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        e = html.escape
        parts = [f"<h1>{e(self.title)}</h1>", '<nav id="contents"><strong>Contents</strong><ul>',
                 f'<li><a href="#{CLAIMS_ANCHOR}">Claims and verdicts</a></li>']
        parts += [f'<li><a href="#{s.anchor}">{e(s.title)}</a></li>' for s in self.sections]
        parts += ["</ul></nav>", f'<h2 id="{CLAIMS_ANCHOR}">Claims and verdicts</h2>',
                  f'<p class="counts"><strong>{e(self.counts())}</strong></p>', '<table class="tbl claims"><thead><tr><th>claim</th><th>verdict</th><th>evidence</th></tr></thead>'
                  "<tbody>"]
        # A coloured badge, not an emoji: it reads the same in a browser without an emoji font.
        parts += [f'<tr><td><a href="#{s.anchor}">{e(c.statement)}</a></td>'
                  f'<td><span class="v {VERDICT_CLASS[c.verdict]}">{e(c.verdict)}</span></td>'
                  f"<td>{e(c.evidence)}</td></tr>" for s, c in self.claim_rows()]
        parts.append("</tbody></table>")
        if self.intro:
            parts.append(f"<p>{e(self.intro)}</p>")
        for kind, value in self.blocks:
            if kind == "section":
                parts.append(f'<h2 id="{value.anchor}">{e(value.title)}</h2>')
                if value.claims:
                    parts.append(f'<p class="back">Claims judged here: {len(value.claims)} (verdicts in '
                                 f'<a href="#{CLAIMS_ANCHOR}">the claims table</a>).</p>')
            elif kind == "h":
                parts.append(f"<h3>{e(value)}</h3>")
            elif kind == "p":
                parts.append(f"<p>{e(value)}</p>")
            elif kind == "table":
                parts.append(value.to_html(index=False, escape=True, border=0, classes="tbl", na_rep=NO_VALUE))
            else:
                data = base64.b64encode(value.png).decode()
                parts.append(f'<figure><img alt="{e(value.caption)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{e(value.caption)}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
                 "table.tbl{border-collapse:collapse;margin:1em 0;font-size:14px}"
                 "table.tbl td,table.tbl th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
                 "figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:13px}"
                 "p.back{color:#555;font-size:13px}"
                 "span.v{padding:1px 6px;border-radius:3px;white-space:nowrap;font-weight:600}"
                 "span.holds{background:#d4edda;color:#155724}span.fails{background:#f8d7da;color:#721c24}"
                 "span.open{background:#e2e3e5;color:#383d41}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>"
                f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        figs = out_dir / "figures"
        figs.mkdir(exist_ok=True)
        for kind, value in self.blocks:
            if kind == "fig":
                (figs / f"{value.name}.png").write_bytes(value.png)
        (out_dir / "report.md").write_text(self.markdown("figures"))
        (out_dir / "report.html").write_text(self.html())


NO_VALUE = "–"  # a cell with nothing measured (never "nan")
CLIPPED = "†"  # after a CI cut to the metric's range: a t-interval over few seeds can run past 0 or 100 %


def counts_line(claims: list[Claim]) -> str:
    """One line over a claims table: how many claims, and how many of each verdict."""
    verdicts = [c.verdict for c in claims]
    parts = [f"{verdicts.count(v)} {v}" for v in VERDICT_MARK if verdicts.count(v)]
    return f"{len(verdicts)} claims: " + ", ".join(parts) + "." if verdicts else "No claims were judged."


def _md_cell(value) -> str:
    """A value safe inside one Markdown table cell."""
    return NO_VALUE if _missing(value) else str(value).replace("|", "\\|").replace("\n", " ")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def ci_cell(mean: float, low: float, high: float, scale: float = 100.0,
            bounds: tuple[float, float] | None = (0.0, 1.0)) -> str:
    """'mean [low, high]' scaled (to % by default). The CI is cut to `bounds` (a rate's [0, 1]; None: no bounds)
    and then marked with CLIPPED; a missing mean is NO_VALUE. A bound exactly at the edge with the mean inside
    was cut upstream (the learning curves store rates cut to [0, 1]; a t-interval never ends exactly there)."""
    if _missing(mean):
        return NO_VALUE
    clipped = bounds is not None and (low < bounds[0] or high > bounds[1]
                                      or (high == bounds[1] and low < mean < bounds[1])
                                      or (low == bounds[0] and bounds[0] < mean < high))
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return f"{mean * scale:.1f} [{low * scale:.1f}, {high * scale:.1f}]{CLIPPED if clipped else ''}"
