"""The explorer's page parts: exact number cells, tables that download as CSV, the page shell.

Numbers stay exact. An amount of base units shows as tokens with four
decimals (truncated, as the terminal tables do) and carries the whole value,
in tokens to the last of its 18 decimals and in base units, in its ``title``
(shown on hover) and in ``data-value``; a table's CSV has the raw values
(base units, PPM, PPB). The style sheet and the refresh script are strings
here, served by the explorer itself: a page loads nothing from elsewhere.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import quote, urlencode

from protocol import TOKEN
from protocol.units import PPB, PPM


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def exact_tokens(amount: int) -> str:
    """Base units as tokens with all 18 decimals: ``1.500000000000000000``."""
    whole, frac = divmod(abs(amount), TOKEN)
    return f"{'-' if amount < 0 else ''}{whole}.{frac:018d}"


def short_tokens(amount: int, places: int = 4) -> str:
    """Base units as tokens with ``places`` decimals, truncated, thousands separated."""
    whole, frac = divmod(abs(amount), TOKEN)
    return f"{'-' if amount < 0 else ''}{whole:,}.{frac * 10**places // TOKEN:0{places}d}"


# --- cells ----------------------------------------------------------------------------------

Kind = str
"""How a column shows its values: one of :data:`FORMATS`, or ``"row"``: each row's ``kind``."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One rendered value: the text shown, the exact value on hover, the raw value."""

    text: str
    title: str = ""
    value: object = ""
    numeric: bool = True


NONE = Cell("–", "", "", numeric=True)


def tokens_cell(value: int) -> Cell:
    return Cell(short_tokens(value), f"{exact_tokens(value)} tokens ({value} base units)", value)


def int_cell(value: int) -> Cell:
    return Cell(f"{value:,}", str(value), value)


def ppm_cell(value: int) -> Cell:
    return Cell(f"{100 * value / PPM:.2f} %", f"{value} PPM = {Fraction(value, PPM)}", value)


def ppb_cell(value: int) -> Cell:
    return Cell(f"{100 * value / PPB:.4f} %", f"{value} PPB = {Fraction(value, PPB)}", value)


def float_cell(value: float) -> Cell:
    if isinstance(value, float) and math.isnan(value):
        return NONE
    text = f"{value:.4g}" if value and abs(value) < 1e-3 else f"{value:,.4f}"
    return Cell(text, repr(value), repr(value))


def ratio_cell(value: Fraction | int) -> Cell:
    """An exact fraction: six significant digits shown, the fraction on hover."""
    f = Fraction(value)
    return Cell(f"{float(f):.6g}", f"{f.numerator} / {f.denominator} = {float(f)!r}", float(f))


def text_cell(value: object) -> Cell:
    return Cell(str(value), "", value, numeric=False)


def flag_cell(value: object) -> Cell:
    return Cell("yes" if value else "no", "", int(bool(value)), numeric=False)


FORMATS: dict[Kind, Callable[[Any], Cell]] = {
    "tokens": tokens_cell,
    "int": int_cell,
    "ppm": ppm_cell,
    "ppb": ppb_cell,
    "float": float_cell,
    "ratio": ratio_cell,
    "text": text_cell,
    "flag": flag_cell,
}


def csv_value(kind: Kind, value: Any) -> str:
    if value is None:
        return ""
    if kind == "ratio":
        return repr(float(Fraction(value)))
    if kind == "flag":
        return str(int(bool(value)))
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: the row key, its header and how its values show."""

    key: str
    header: str
    kind: Kind = "text"
    link: Callable[[Mapping[str, Any]], str] | None = None  # a cell linking elsewhere
    warn: Callable[[Mapping[str, Any]], bool] | None = None  # a cell marked as a warning
    shown: bool = True  # False: in the CSV only

    def kind_of(self, row: Mapping[str, Any]) -> Kind:
        """The kind of this column's value in ``row`` (``"row"``: the row's own ``kind``)."""
        return str(row.get("kind", "text")) if self.kind == "row" else self.kind

    def render(self, row: Mapping[str, Any], tag: str = "td", extra: str = "") -> str:
        """This column's value in ``row`` as one element: its text, the exact value on hover
        (``title``) and the raw value (``data-value``)."""
        value = row.get(self.key)
        cell = NONE if value is None else FORMATS[self.kind_of(row)](value)
        classes = [extra] if extra else []
        if cell.numeric:
            classes.append("num")
        if value is None:
            classes.append("none")
        warn = self.warn is not None and self.warn(row)
        if warn:
            classes.append("warn")
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        if cell.title:
            attrs += f' title="{esc(cell.title)}"'
        attrs += f' data-value="{esc(cell.value)}"'
        if warn:
            attrs += ' data-warn="1"'
        text = esc(cell.text)
        if self.link is not None and value is not None:
            text = f'<a href="{esc(self.link(row))}">{text}</a>'
        return f"<{tag}{attrs}>{text}</{tag}>"

    def td(self, row: Mapping[str, Any]) -> str:
        return self.render(row)


@dataclass
class Table:
    """Rows of raw values under named columns: an HTML table and its CSV download."""

    id: str
    title: str
    columns: Sequence[Column]
    rows: list[Mapping[str, Any]]
    note: str = ""
    limit: int | None = None  # rows shown on the page (the CSV has them all)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([csv_value(c.kind_of(row), row.get(c.key)) for c in self.columns])
        return out.getvalue()

    def html(self, link: str) -> str:
        """The table, its CSV downloadable from ``link``."""
        columns = [c for c in self.columns if c.shown]
        head = "".join(f'<th data-key="{esc(c.key)}">{esc(c.header)}</th>' for c in columns)
        shown = self.rows if self.limit is None else self.rows[: self.limit]
        body = "".join(
            f'<tr data-key="{esc(row.get(self.columns[0].key))}">'
            + "".join(c.td(row) for c in columns)
            + "</tr>"
            for row in shown
        )
        more = ""
        if self.limit is not None and len(self.rows) > self.limit:
            more = (
                f'<p class="note">{self.limit:,} of {len(self.rows):,} rows shown; the CSV has'
                " them all.</p>"
            )
        note = f'<p class="note">{self.note}</p>' if self.note else ""
        if not self.rows:
            more = '<p class="note">None yet.</p>'
        return (
            f'<section class="table" id="{esc(self.id)}"><h2>{esc(self.title)}'
            f' <a class="csv" href="{esc(link)}" download="{esc(self.id)}.csv">CSV</a></h2>'
            f'{note}<div class="scroll"><table data-table="{esc(self.id)}"><thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table></div>{more}</section>"
        )


def figure(svg: str, caption: str) -> str:
    return f'<figure class="chart">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def href(path: str, **query: str) -> str:
    """A link inside the explorer: ``path`` with its query."""
    return path + ("?" + urlencode(query) if query else "")


def operator_href(name: str) -> str:
    return "/operator/" + quote(name, safe="")


def delegator_href(address: str) -> str:
    return href("/delegator", address=address)


# --- pages ----------------------------------------------------------------------------------


@dataclass
class Page:
    """One explorer page: its title, its HTML blocks in order and its tables by id."""

    name: str  # the navigation entry it belongs to
    title: str
    query: Mapping[str, str] = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    static: bool = False  # a page in a file (the run report): CSVs travel inside it

    def add(self, block: str) -> None:
        self.blocks.append(block)

    def csv_link(self, table: Table) -> str:
        """Where a table's CSV downloads from: the explorer's URL, or inline in a file."""
        if self.static:
            return "data:text/csv;charset=utf-8," + quote(table.csv())
        query = {k: v for k, v in self.query.items() if k not in ("format", "table")}
        return "?" + urlencode({**query, "format": "csv", "table": table.id})

    def table(self, table: Table) -> None:
        self.tables[table.id] = table
        self.blocks.append(table.html(self.csv_link(table)))

    def stats(self, table: Table) -> None:
        """A (key, quantity, value) table shown as a grid of figures; its CSV as any table's."""
        self.tables[table.id] = table
        link = self.csv_link(table)
        value = next(c for c in table.columns if c.key == "value")
        cards = "".join(
            f'<div class="stat" data-key="{esc(row["key"])}"><div class="label">'
            f"{esc(row['quantity'])}</div>{value.render(row, 'div', 'value')}</div>"
            for row in table.rows
        )
        self.blocks.append(
            f'<section class="stats" id="{esc(table.id)}"><h2>{esc(table.title)}'
            f' <a class="csv" href="{esc(link)}" download="{esc(table.id)}.csv">CSV</a></h2>'
            f'<div class="grid" data-stats="{esc(table.id)}">{cards}</div></section>'
        )

    def charts(self, *figures: str) -> None:
        self.blocks.append(f'<div class="charts">{"".join(figures)}</div>')


NAV = (
    ("network", "/", "Network"),
    ("operators", "/operators", "Operators"),
    ("delegator", "/delegator", "Delegators"),
    ("coprocessors", "/coprocessors", "Coprocessors"),
    ("distribution", "/distribution", "Distribution"),
)


def shell(page: Page, status: str, refresh_s: float) -> str:
    """The whole HTML document of a page."""
    nav = "".join(
        f'<a href="{url}"{" class=here" if name == page.name else ""}>{esc(label)}</a>'
        for name, url, label in NAV
    )
    refresh = max(1, round(refresh_s))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(page.title)} · stakeray explorer</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/explorer.css">'
        f'<noscript><meta http-equiv="refresh" content="{refresh + 1}"></noscript>'
        '<script src="/static/explorer.js" defer></script></head>'
        f'<body data-refresh-ms="{int(refresh_s * 1000)}"><header><span class="brand">stakeray'
        f' explorer</span><nav>{nav}</nav><form action="/delegator" method="get"'
        ' class="search"><input name="address" placeholder="address" aria-label="address">'
        "<button>Find</button></form></header>"
        f'<div id="live" class="status">{status}</div>'
        f'<main id="content"><h1>{esc(page.title)}</h1>{"".join(page.blocks)}</main>'
        "</body></html>"
    )


STYLE = """
:root { --fg: #1b1f24; --muted: #5b6470; --line: #d8dde3; --head: #f3f5f7; --warn: #b3261e;
  --warnbg: #fdecea; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: #fff; }
header { display: flex; gap: 18px; align-items: center; padding: 8px 18px;
  background: #13233a; color: #fff; flex-wrap: wrap; }
header .brand { font-weight: 600; letter-spacing: .02em; }
header nav a { color: #c9d6ea; text-decoration: none; margin-right: 14px; }
header nav a.here, header nav a:hover { color: #fff; border-bottom: 2px solid #6aa0ff; }
header form { margin-left: auto; display: flex; gap: 4px; }
header input { width: 16em; padding: 3px 6px; }
.status { padding: 5px 18px; background: var(--head); border-bottom: 1px solid var(--line);
  color: var(--muted); font-size: 12.5px; }
.status .error { color: var(--warn); font-weight: 600; }
main { padding: 6px 18px 40px; max-width: 1400px; }
h1 { font-size: 21px; margin: 10px 0 6px; }
h2 { font-size: 16px; margin: 22px 0 6px; }
a { color: var(--accent); }
a.csv { font-size: 11px; font-weight: 500; margin-left: 8px; padding: 1px 6px;
  border: 1px solid var(--line); border-radius: 3px; text-decoration: none; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left;
  white-space: nowrap; }
th { background: var(--head); font-weight: 600; position: sticky; top: 0; }
td.num { text-align: right; }
td.none { color: var(--muted); text-align: center; }
td.warn, .warning { color: var(--warn); background: var(--warnbg); font-weight: 600; }
p.warning { padding: 6px 10px; border-left: 4px solid var(--warn); }
.note { color: var(--muted); margin: 4px 0; max-width: 900px; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0; }
figure.chart { margin: 0; border: 1px solid var(--line); padding: 4px; background: #fff; }
figure.chart figcaption { font-size: 12px; color: var(--muted); max-width: 580px;
  padding: 2px 6px 4px; }
svg.chart { display: block; max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg.chart .title { font-size: 13px; font-weight: 600; fill: var(--fg); }
svg.chart .tick, svg.chart .legend { fill: #444; }
svg.chart .label { fill: var(--muted); font-size: 11.5px; }
svg.chart .note { fill: var(--muted); font-size: 12px; }
svg.chart .grid { stroke: #eceff3; }
svg.chart .axis { stroke: #888; }
svg.chart .frame { fill: none; stroke: #b9c0c8; }
svg.chart .equality { stroke: #999; stroke-dasharray: 4 4; }
.stats .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
  gap: 8px; max-width: 1220px; }
.stat { border: 1px solid var(--line); border-radius: 4px; padding: 5px 10px; }
.stat .label { color: var(--muted); font-size: 12px; }
.stat .value { font-size: 17px; font-variant-numeric: tabular-nums; text-align: left; }
.stat .value.warn { padding: 0 4px; }
"""

SCRIPT = """
(function () {
  "use strict";
  var body = document.body, every = +body.getAttribute("data-refresh-ms") || 2000;
  body.setAttribute("data-refresh", "on");
  function swap(doc, id) {
    var fresh = doc.getElementById(id), old = document.getElementById(id);
    if (fresh && old && fresh.innerHTML !== old.innerHTML) { old.innerHTML = fresh.innerHTML; }
  }
  function tick() {
    if (document.hidden) { return setTimeout(tick, every); }
    fetch(location.href, {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error(r.status); }
      return r.text();
    }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, "text/html");
      swap(doc, "live"); swap(doc, "content");
      body.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function () {
      var live = document.getElementById("live");
      if (live) { live.setAttribute("data-stale", "1"); }
    }).then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"""
