"""The nightly report as one self-contained HTML file: plotly.js, the CSS and the table script are
inlined, so the page works from a file on a host with no network.

Charts are plotly figures (plotly.js draws them as SVG in the browser); tables are plain HTML rows
that a few lines of script sort and filter. Every figure comes from the report object.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

_CHART_CONFIG = {"displaylogo": False, "responsive": True}
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "height": 360}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
header{background:#243b53;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#bcccdc}main{padding:16px 28px;max-width:1400px}
section{background:#fff;border-radius:8px;padding:12px 18px;margin:14px 0;box-shadow:0 1px 3px #0002}
h2{font-size:17px;margin:4px 0 10px}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{flex:1 1 120px;background:#f0f4f8;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:24px}.card.bad b{color:#c62828}.card.good b{color:#2e7d32}
/* auto-fill, not auto-fit: each chart is drawn as soon as it is parsed, when the grid does not
   yet hold its neighbour, and must already get the width of one column */
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.grid section{margin:0}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{cursor:pointer;background:#f0f4f8;position:sticky;top:0;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num,th.num{text-align:right}.scroll{max-height:480px;overflow:auto}
.tools{display:flex;gap:10px;align-items:center;margin-bottom:6px}
.tools input{padding:4px 8px;width:320px;border:1px solid #9aa5b1;border-radius:4px}
.count{color:#52606d}.empty{color:#52606d;font-style:italic}code{font-size:12px}
button.project{border:0;background:none;color:#1565c0;cursor:pointer;padding:0;font:inherit;text-decoration:underline}
.changes{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:14px}
.changes h3{font-size:15px;margin:4px 0}.changes code{word-break:break-all}.scroll.short{max-height:220px}
#project-view{display:none}#project-view.on{display:block}ul{margin:4px 0}
"""

# Sorting by a header click (numbers as numbers), filtering by a text box, and the project view,
# which narrows the wheel tables to one project's rows.
_SCRIPT = """
(function(){
  var project = null;
  function apply(table){
    var box = document.querySelector('input[data-filter="'+table.id+'"]');
    var q = box ? box.value.trim().toLowerCase() : '';
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++){
      var r = rows[i];
      var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) &&
               (!project || !r.dataset.project || r.dataset.project === project);
      r.hidden = !ok; if (ok) shown++;
    }
    var c = document.querySelector('[data-count="'+table.id+'"]');
    if (c) c.textContent = shown + ' of ' + rows.length + ' rows';
  }
  function sort(table, th){
    var col = th.cellIndex, num = th.classList.contains('num');
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    Array.prototype.forEach.call(th.parentNode.cells, function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      return dir * (num ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y));
    });
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.querySelectorAll('table.data').forEach(function(table){
    table.tHead.rows[0].querySelectorAll('th').forEach(function(th){
      th.addEventListener('click', function(){ sort(table, th); });
    });
    var box = document.querySelector('input[data-filter="'+table.id+'"]');
    if (box) box.addEventListener('input', function(){ apply(table); });
    apply(table);
  });
  function setProject(name){
    project = name;
    var view = document.getElementById('project-view');
    view.classList.toggle('on', !!name);
    document.getElementById('project-name').textContent = name || '';
    document.querySelectorAll('table.data').forEach(apply);
  }
  document.addEventListener('click', function(e){
    var b = e.target.closest('button.project');
    if (b) { setProject(b.dataset.project); document.getElementById('project-view').scrollIntoView(); }
    if (e.target.id === 'project-clear') setProject(null);
  });
})();
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(table_id: str, header: Sequence[tuple[str, bool]], rows: Iterable[tuple[str | None, Sequence[str]]],
           filterable: bool = True) -> str:
    """A sortable table; header is (title, numeric), each row (its project or None, cells as HTML)."""
    head = "".join(f'<th class="num">{_e(t)}</th>' if num else f"<th>{_e(t)}</th>" for t, num in header)
    body = []
    for project, cells in rows:
        attr = f' data-project="{_e(project)}"' if project else ""
        tds = "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, (_, num) in zip(cells, header))
        body.append(f"<tr{attr}>{tds}</tr>")
    tools = ""
    if filterable:
        tools = (f'<div class="tools"><input type="search" placeholder="filter rows" data-filter="{table_id}"'
                 f' aria-label="filter {table_id}"><span class="count" data-count="{table_id}"></span></div>')
    return (f'{tools}<div class="scroll"><table class="data" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _chart(div_id: str, fig: go.Figure) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=_CHART_CONFIG,
                       default_height=f"{fig.layout.height}px")


def _bar(div_id: str, title: str, names: list[str], values: list[int], horizontal: bool = False) -> str:
    if not names:
        return f'<p class="empty" id="{div_id}">None in this run.</p>'
    if horizontal:  # most common at the top
        trace = go.Bar(x=values[::-1], y=names[::-1], orientation="h", text=values[::-1], textangle=0)
        height = max(240, 60 + 22 * len(names))
    else:
        trace = go.Bar(x=names, y=values, text=values, textangle=0)
        height = 360
    fig = go.Figure(trace, layout={**_LAYOUT, "title": title, "height": height})
    # names such as "2.17" or "linux" are categories, never numbers or dates
    if horizontal:
        fig.update_yaxes(type="category")
    else:
        fig.update_xaxes(type="category")
    return _chart(div_id, fig)


@cache
def _tag_order(name: str) -> tuple[int, tuple[int, ...], str]:
    """manylinux by glibc version, then musllinux by musl version, then linux."""
    m = re.match(r"(manylinux|musllinux)_(\d+)_(\d+)$", name)
    if not m:
        return (2, (), name)
    return (0 if m.group(1) == "manylinux" else 1, (int(m.group(2)), int(m.group(3))), name)


def _matrix(figures: dict[str, Any]) -> str:
    cells = figures["declared_vs_achieved"]
    if not cells:
        return '<p class="empty" id="chart-matrix">No audited wheels in this run.</p>'
    declared = sorted({c["declared"] for c in cells}, key=_tag_order)
    achieved = sorted({c["achieved"] for c in cells}, key=_tag_order)
    z: list[list[int | None]] = [[None] * len(achieved) for _ in declared]
    for c in cells:
        z[declared.index(c["declared"])][achieved.index(c["achieved"])] = c["wheels"]
    fig = go.Figure(go.Heatmap(z=z, x=achieved, y=declared, colorscale="Blues", texttemplate="%{z}",
                               hovertemplate="declared %{y}<br>achieved %{x}<br>%{z} wheels<extra></extra>"),
                    layout={**_LAYOUT, "title": "Declared (rows) against achieved (columns)",
                            "height": max(300, 120 + 40 * len(declared))})
    fig.update_xaxes(type="category", title="achieved")
    fig.update_yaxes(type="category", title="declared", autorange="reversed")
    return _chart("chart-matrix", fig)


def _arch_libc(figures: dict[str, Any]) -> str:
    rows = figures["arch_libc"]
    if not rows:
        return '<p class="empty" id="chart-arch">No audited wheels in this run.</p>'
    arches = sorted({r["arch"] for r in rows})
    fig = go.Figure(layout={**_LAYOUT, "title": "Architecture and libc", "barmode": "stack"})
    for libc in ("glibc", "musl"):
        counts = {r["arch"]: r["wheels"] for r in rows if r["libc"] == libc}
        if counts:
            fig.add_trace(go.Bar(name=libc, x=list(counts), y=list(counts.values()),
                                 text=list(counts.values()), textangle=0))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=arches)
    return _chart("chart-arch", fig)


def _trend(figures: dict[str, Any]) -> str:
    trend = figures["trend"]
    x = [f"run {t['run']}<br>{t['started_at'][:10]}" for t in trend]
    # problems on the left axis, the (much larger) audited count on the right one
    fig = go.Figure(layout={**_LAYOUT, "title": "Per run", "hovermode": "x unified",
                            "yaxis": {"title": "over-promising, errors", "rangemode": "tozero"},
                            "yaxis2": {"title": "audited", "overlaying": "y", "side": "right", "rangemode": "tozero",
                                       "showgrid": False}})
    for key, name, axis in (("over_promising", "over-promising", "y"), ("errors", "errors", "y"),
                            ("linux", "audited", "y2")):
        fig.add_trace(go.Scatter(x=x, y=[t[key] for t in trend], name=name, mode="lines+markers", yaxis=axis))
    fig.update_xaxes(type="category")
    return _chart("chart-trend", fig)


def _cards(head: dict[str, int]) -> str:
    cards = [("wheels", "wheels", ""), ("projects", "projects", ""), ("linux", "audited (Linux)", ""),
             ("consistent", "consistent", "good"), ("over_promising", "over-promising", "bad"),
             ("errors", "errors", "bad"), ("pure", "pure", ""), ("not_linux", "not Linux", "")]
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}" id="headline-{key}"><b>{head[key]}</b>{_e(title)}</div>'
        for key, title, cls in cards) + "</div>"


def _diff(diff: dict[str, Any] | None) -> str:
    if diff is None:
        return '<p class="empty">No earlier completed run to compare with.</p>'
    parts = [(f"<p>Compared with run {diff['compare_to']}: <b>{diff['added']}</b> wheels added, "
              f"<b>{diff['removed']}</b> removed.</p>")]
    columns = []
    for key, title in (("new_violations", "New violations"), ("fixed", "Fixed"), ("new_errors", "New errors")):
        items = "".join(f"<li><code>{_e(w)}</code></li>" for w in diff[key])
        columns.append(f'<div><h3>{title}: <span id="diff-{key}-count">{len(diff[key])}</span></h3>'
                       f'<div class="scroll short"><ul id="diff-{key}">{items}</ul></div></div>')
    return "".join(parts) + '<div class="changes">' + "".join(columns) + "</div>"


def _code(value: object) -> str:
    return f"<code>{_e(value)}</code>"


def _abi3(abi3: dict[str, Any]) -> str:
    """abi3 wheels, how many break their promise, the symbols that break it most, and the wheels."""
    cards = '<div class="cards">' + "".join(
        f'<div class="card {cls}" id="abi3-{key}"><b>{abi3[key]}</b>{_e(title)}</div>'
        for key, title, cls in (("wheels", "abi3 wheels", ""), ("consistent", "consistent", "good"),
                                ("over_promising", "over-promising", "bad"))) + "</div>"
    symbols = abi3["offending_symbols"]
    chart = _bar("chart-abi3-symbols", "abi3 wheels using it", [f"{s['name']} ({s['kind']})" for s in symbols],
                 [s["wheels"] for s in symbols], horizontal=True)
    table = _table("table-abi3", [("wheel", False), ("project", False), ("baseline", False), ("computed", False),
                                  ("problems", False)],
                   ((w["project"], [_code(w["wheel"]), _e(w["project"]), _e(w["baseline"]), _e(w["computed"]),
                                    "<br>".join(_e(p) for p in w["problems"])]) for w in abi3["over_promising_wheels"]))
    return f'{cards}<h3>Most common offending symbols</h3>{chart}<h3>Over-promising abi3 wheels</h3>{table}'


def _rebuild(rebuild: dict[str, Any] | None) -> str:
    """The build image a compliant rebuild needs, the full sentence on hover."""
    if rebuild is None:
        return ""
    shown = rebuild["image"] if rebuild["old_enough"] else "no image old enough"
    return f'<span title="{_e(rebuild["message"])}">{_code(shown)}</span>'


def _executable_stack(stack: dict[str, Any], rebuild_images: list[dict[str, Any]]) -> str:
    """The members glibc 2.41+ refuses to dlopen, and the images rebuilds need."""
    note = (f"<p>{stack['not_checked']} results were stored before this check existed and were not checked.</p>"
            if stack["not_checked"] else "")
    table = _table("table-executable-stack", [("wheel", False), ("project", False), ("member", False), ("why", False)],
                   ((r["project"], [_code(r["wheel"]), _e(r["project"]), _code(r["member"]), _e(r["message"])])
                    for r in stack["rows"]))
    images = _table("table-rebuild-images", [("image", False), ("for", False), ("wheels", True)],
                    ((None, [_code(r["image"]), _e(r["for_tag"]), str(r["wheels"])]) for r in rebuild_images),
                    filterable=False)
    return (f'<section id="executable-stack"><h2>Executable stack: {stack["wheels"]} wheels, {stack["members"]} '
            f'members</h2><p>glibc 2.41 and newer refuse to dlopen these members ("cannot enable executable '
            f'stack"); the tag is not changed, and <code>fastaudit repair --clear-execstack</code> clears the flag.'
            f'</p>{note}{table}</section><section id="rebuild-images"><h2>Build images a compliant rebuild needs'
            f'</h2><p>For wheels whose symbol versions break their tag: the pypa/manylinux image whose libc is '
            f'not newer than the tag\'s.</p>{images}</section>')


def render_html(figures: dict[str, Any]) -> str:
    run = figures["run"]
    libs = figures["external_libraries"], figures["grafted_libraries"]
    over = _table("table-over-promising", [("wheel", False), ("project", False), ("declared", False),
                                           ("achieved", False), ("reasons", False), ("rebuild in", False)],
                  ((o["project"], [_code(o["wheel"]), _e(o["project"]), _e(o["declared"]), _e(o["achieved"]),
                                   "<br>".join(_e(r) for r in o["reasons"]), _rebuild(o["rebuild_image"])])
                   for o in figures["over_promising"]))
    errors = _table("table-errors", [("wheel", False), ("error", False), ("member", False), ("message", False)],
                    ((e["project"], [_code(e["wheel"]), _e(e["error_type"]), _e(e["member"]), _e(e["message"])])
                     for e in figures["errors"]))
    projects = _table("table-projects", [("project", False), ("wheels", True), ("versions", True),
                                         ("audited", True), ("over-promising", True), ("errors", True),
                                         ("glibc required", False)],
                      ((None, [f'<button class="project" data-project="{_e(p["project"])}">{_e(p["project"])}</button>',
                               str(p["wheels"]), str(p["versions"]), str(p["linux"]), str(p["over_promising"]),
                               str(p["errors"]), _e(p["glibc_required"])]) for p in figures["projects"]))
    trend_table = _table("table-trend", [("run", True), ("started", False), ("status", False), ("wheels", True),
                                         ("audited", True), ("over-promising", True), ("errors", True)],
                         ((None, [str(t["run"]), _e(t["started_at"]), _e(t["status"]), str(t["wheels"]),
                                  str(t["linux"]), str(t["over_promising"]), str(t["errors"])])
                          for t in figures["trend"]), filterable=False)
    vendored = _table("table-vendored", [("library", False), ("version", False), ("wheels", True), ("projects", True),
                                         ("evidence", False), ("linkage", False)],
                      ((None, [_e(v["library"]), _e(v["version"] or "unknown"), str(v["wheels"]), str(v["projects"]),
                               _e(", ".join(v["evidence"])), _e(", ".join(v["linkage"]))])
                       for v in figures["vendored_libraries"]))
    findings = figures["advisory_findings"]
    advisories = "" if findings is None else (
        f'<section id="advisories"><h2>Advisories: {len(findings)} affected members</h2>'
        + _table("table-advisories", [("advisory", False), ("library", False), ("version", False), ("wheel", False),
                                      ("member", False), ("summary", False)],
                 ((f["project"], [_e(f["id"]), _e(f["library"]), _e(f["version"]), _code(f["wheel"]),
                                  _code(f["member"]), _e(f["summary"])]) for f in findings))
        + "</section>")
    verdicts = figures["verdicts"]
    glibc = figures["glibc_required"]
    body = f"""
<header><h1>fastaudit report: run {run['id']}</h1>
<p>{_e(run['status'])}, started {_e(run['started_at'])}, finished {_e(run['finished_at'])};
fastaudit {_e(run['fastaudit_version'])}, policy data {_e(run['policy_version'])}; store {_e(figures['store'])}</p>
</header><main>
<section id="headline"><h2>Headline</h2>{_cards(figures['headline'])}</section>
<section id="diff"><h2>Since the previous run</h2>{_diff(figures['diff'])}</section>
<section id="trend"><h2>Trend over the last runs</h2>{_trend(figures)}{trend_table}</section>
<div class="grid">
<section id="verdicts"><h2>Verdicts</h2>{_bar("chart-verdicts", "Wheels per verdict",
    [v["verdict"] for v in verdicts], [v["wheels"] for v in verdicts], horizontal=True)}</section>
<section id="glibc"><h2>glibc actually required</h2>{_bar("chart-glibc",
    "glibc wheels by the newest GLIBC_x.y their binaries need", [g["glibc"] for g in glibc],
    [g["wheels"] for g in glibc])}</section>
<section id="matrix"><h2>Declared against achieved</h2>{_matrix(figures)}</section>
<section id="arch-libc"><h2>Architecture and libc</h2>{_arch_libc(figures)}</section>
<section id="external"><h2>Most common external libraries</h2>{_bar("chart-external", "Wheels needing it",
    [lib["name"] for lib in libs[0]], [lib["wheels"] for lib in libs[0]], horizontal=True)}</section>
<section id="grafted"><h2>Most common grafted libraries</h2>{_bar("chart-grafted", "Wheels carrying it",
    [lib["name"] for lib in libs[1]], [lib["wheels"] for lib in libs[1]], horizontal=True)}</section>
</div>
<section id="abi3"><h2>abi3: the stable ABI the tags promise</h2>{_abi3(figures['abi3'])}</section>
<section id="project-view"><h2>Project <span id="project-name"></span></h2>
<p>The tables below show this project's wheels only. <button id="project-clear">Show all projects</button></p></section>
{advisories}
<section id="vendored"><h2>Vendored native libraries: {len(figures['vendored_libraries'])} library versions</h2>
<p>Third-party native code the wheels ship, as grafted files or linked statically, with the version the
binaries carry ("unknown" where nothing in the binary tells it).</p>{vendored}</section>
<section id="over-promising"><h2>Over-promising wheels: {len(figures['over_promising'])}</h2>{over}</section>
{_executable_stack(figures['executable_stack'], figures['rebuild_images'])}
<section id="errors"><h2>Errors: {len(figures['errors'])}</h2>{errors}</section>
<section id="projects"><h2>Projects: {len(figures['projects'])}</h2>
<p>Choose a project to see only its wheels in the tables above.</p>{projects}</section>
</main>"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>fastaudit report: run {run['id']}</title><style>{_CSS}</style>"
            f"<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>"
            f"<script>{get_plotlyjs()}</script></head><body>{body}<script>{_SCRIPT}</script></body></html>\n")
