"""Pipeline stage ``overview``: ``results/report.html``, the page a hydrographer opens first.

One self-contained HTML file next to the per-station files: counts by status, then one row per station
(status, flags, chosen model and equation, rating period, change since the last run) that can be searched
and sorted, each linking to the station's figure, rating table and diagnostics. Only the selected station's
figure is loaded, so the page stays light at hundreds of stations.
"""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

#: the overview's columns: (title, column of results/stations.csv)
COLUMNS = [("station", "station_id"), ("name", "name"), ("status", "status"), ("flags", "flags"),
           ("model", "model"), ("equation", "equation"), ("gaugings", "gaugings_used"),
           ("rating period", "period"), ("rating shifts", "shifts"), ("discharge series", "discharge"),
           ("change since last run", "change_since_previous_run")]

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}
.counts span{margin-right:1.2em}
input{font-size:1em;padding:.3em;width:22em;margin:.6em 0}
table{border-collapse:collapse;font-size:.85em;width:100%}
th{cursor:pointer;background:#eee;position:sticky;top:0;text-align:left;padding:.3em}
td{border-top:1px solid #ddd;padding:.3em;vertical-align:top}
tr.selected td{background:#eef5ff}
.ok{color:#17612b;font-weight:600}.flagged{color:#a35a00;font-weight:600}
.error,.insufficient{color:#b00020;font-weight:600}
#panel{margin:1em 0}#panel img{max-width:100%;border:1px solid #ccc;display:block;margin-bottom:.5em}
.eq{font-family:monospace;font-size:.95em}
"""

SCRIPT = """
const rows=[...document.querySelectorAll('#stations tbody tr')];
document.getElementById('search').addEventListener('input',e=>{const q=e.target.value.toLowerCase();
 let n=0;rows.forEach(r=>{const show=r.textContent.toLowerCase().includes(q);r.style.display=show?'':'none';n+=show;});
 document.getElementById('shown').textContent=n;});
document.querySelectorAll('#stations th').forEach((th,i)=>th.addEventListener('click',()=>{
 const body=document.querySelector('#stations tbody');const up=th.dataset.dir!=='asc';th.dataset.dir=up?'asc':'desc';
 rows.sort((a,b)=>{const x=a.cells[i].dataset.key??a.cells[i].textContent,y=b.cells[i].dataset.key??b.cells[i].textContent;
  const nx=parseFloat(x),ny=parseFloat(y);const c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return up?c:-c;});
 rows.forEach(r=>body.appendChild(r));}));
function show(row){rows.forEach(r=>r.classList.remove('selected'));row.classList.add('selected');
 const img=document.getElementById('figure');img.dataset.loaded='';img.src=row.dataset.plot;
 const hy=document.getElementById('hydrograph');if(row.dataset.hydrograph){hy.src=row.dataset.hydrograph;hy.style.display='';}
 else{hy.removeAttribute('src');hy.style.display='none';}
 document.getElementById('caption').textContent=row.dataset.title;}
rows.forEach(r=>r.addEventListener('click',e=>{if(e.target.tagName!=='A')show(r);}));
document.getElementById('figure').addEventListener('load',e=>{e.target.dataset.loaded='1';});
if(rows.length)show(rows[0]);
"""


def _cell(title: str, value) -> str:
    text = "" if pd.isna(value) else str(value)
    if title == "status":
        return f'<td class="{html.escape(text.split()[0] if text else "")}">{html.escape(text)}</td>'
    if title == "equation":
        return f'<td class="eq">{html.escape(text).replace("; ", "<br>")}</td>'
    return f"<td>{html.escape(text)}</td>"


def _series_text(row: dict) -> str:
    """The discharge-series cell: its span, gaps and out-of-range steps, or why there is none."""
    state = str(row.get("discharge_status", "") or "")
    if state in ("ok", "flagged"):
        text = (f"{str(row['discharge_from'])[:10]} to {str(row['discharge_to'])[:10]}, {row['discharge_steps']} steps; "
                f"{row['discharge_gaps']} gap(s)")
        if int(row.get("steps_beyond_limit") or 0):
            text += f"; {row['steps_beyond_limit']} beyond the limit (missing)"
        if int(row.get("steps_above_gauged") or 0):
            text += f"; {row['steps_above_gauged']} above the gauged range"
        return text
    return state


def render(stations: pd.DataFrame, title: str = "ratingflow: rating curves", when: str = "") -> str:
    """The overview page for a stations table (``results/stations.csv``); links are relative to results/."""
    stations = stations.copy()
    if "period" not in stations:
        stations["period"] = "one rating (no periods)"
    if "shifts" not in stations:
        stations["shifts"] = ""
    stations["discharge"] = [_series_text(row) for row in stations.to_dict("records")]
    counts = stations["status"].value_counts()
    head = "".join(f"<th>{html.escape(t)}</th>" for t, _ in COLUMNS) + "<th>files</th>"
    body = []
    for row in stations.to_dict("records"):
        sid = html.escape(str(row["station_id"]))
        links = (f'<a href="plots/{sid}.svg">figure</a> · <a href="tables/{sid}.csv">table</a> · '
                 f'<a href="diagnostics/{sid}.json">diagnostics</a> · <a href="fit/{sid}.models.csv">models</a>')
        if str(row.get("prior_check_passed")) == "False":  # the prior figure is drawn where the check failed
            links += f' · <a href="prior/{sid}.svg">prior check</a>'
        hydro = ""
        if str(row.get("discharge_status", "")) in ("ok", "flagged"):
            hydro = f' data-hydrograph="discharge/{sid}.png"'
            links += (f' · <a href="discharge/{sid}.png">hydrograph</a> · <a href="discharge/{sid}.csv">discharge</a>'
                      f' · <a href="discharge/{sid}.daily.csv">daily</a>')
        cells = "".join(_cell(t, row.get(c)) for t, c in COLUMNS)
        body.append(f'<tr data-plot="plots/{sid}.svg"{hydro} data-title="{sid}: {html.escape(str(row.get("name", "")))}">'
                    f"{cells}<td>{links}</td></tr>")
    summary = " ".join(f'<span class="{html.escape(s.split()[0])}">{html.escape(s)}: {n}</span>'
                       for s, n in counts.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(stations)} stations{', written ' + html.escape(when) if when else ''}. Each curve is a power law with one
to three segments, Q = a<sub>k</sub> (H − e<sub>k</sub>)<sup>b<sub>k</sub></sup> in segment k (e<sub>1</sub> = h0),
or a generalized power law, chosen per station by PSIS-LOO; its equation is in the table. Click a row to see its
figure; click a column title to sort. The full table is <a href="stations.csv">stations.csv</a>, every candidate
model <a href="models.csv">models.csv</a>, what changed <a href="changes.csv">changes.csv</a>.</p>
<p class="counts">{summary}</p>
<div id="panel"><div id="caption"></div><img id="figure" alt="rating figure of the selected station">
<img id="hydrograph" alt="discharge series of the selected station" style="display:none"></div>
<input id="search" type="search" placeholder="search stations, flags, models…"> <span id="shown">{len(stations)}</span> shown
<table id="stations"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""


def run(stations_csv, out_html) -> None:
    """Pipeline step: write the overview page next to the stations table (links are relative to it)."""
    stations = pd.read_csv(stations_csv, keep_default_na=False)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    Path(out_html).write_text(render(stations, when=when))
    print(json.dumps({"stations": len(stations), "page": str(out_html)}))
