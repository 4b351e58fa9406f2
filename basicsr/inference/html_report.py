"""Self-contained ``report.html``: metric tables and, per pair, thumbnails vis | ir | fused | others.

Written by ``test.py``, ``scripts/evaluate.py`` and ``scripts/reference_eval.py`` beside their
CSV tables. The page needs no server and nothing from the network: the style and the small
sorting script are inline, and every thumbnail is embedded as a base64 JPEG data URI made with
OpenCV (at most ``THUMB_BOX`` pixels on its longer side), so the file alone shows everything;
each thumbnail links to its full image by a path relative to the report.

Tables hold the rows of :mod:`basicsr.inference.report` (``{'image': stem, column: float}``).
Every number cell carries its full-precision value (the CSV's text) in ``data-value`` and shows
4 decimals; the best value of each column with a known direction is marked ``class="best"``
(lower is better for e.g. ``Qcv``, ``Nabf``, ``latency_ms``). Clicking a column header sorts
the rows; the mean rows stay below them.

Example::

    write_report(out / 'report.html', 'set_a', [Section(
        'set_a', tables=[convention_table({'': rows}, 'cddfuse')], stems=['000', '001'],
        columns=[ImageColumn('vis', vis_paths), ImageColumn('ir', ir_paths)])])
"""
from __future__ import annotations

import base64
import html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

import cv2
from tqdm import tqdm

from basicsr.inference.report import (Groups, atomic_write_text, cell, counts, csv_cell,
                                      is_finite, mean_row, value_keys)
from basicsr.utils.errors import ConfigError, DataError, DGFusionError, one_line
from basicsr.utils.img_util import list_images, read_image
from basicsr.utils.ir_range import IrRange, to_u8

REPORT_NAME = 'report.html'
THUMB_BOX = 160          # longer side of a thumbnail, pixels (never enlarged)
MAX_THUMB_ROWS = 500     # pairs with thumbnails per section; the tables hold every pair
LOWER_IS_BETTER_COLUMNS = ('latency_ms',)

__all__ = ['REPORT_NAME', 'ImageColumn', 'MetricTable', 'Section', 'compare_images',
           'directions', 'parse_compare', 'render_report', 'convention_table', 'source_columns',
           'thumbnail_uri', 'write_report']


@dataclass(frozen=True)
class MetricTable:
    """A table of per-image rows, one group per method (a single group may be keyed ``''``).

    ``higher_better`` maps a column to its direction; columns not in it are never marked best.
    """

    title: str
    groups: Groups
    higher_better: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageColumn:
    """One thumbnail column: its title and the image file of each stem (missing stems: a gap)."""

    title: str
    paths: Mapping[str, Path]


@dataclass(frozen=True)
class Section:
    """A heading, its metric tables, free-text notes and a thumbnail grid of ``stems``."""

    title: str
    tables: Sequence[MetricTable] = ()
    stems: Sequence[str] = ()
    columns: Sequence[ImageColumn] = ()
    notes: Sequence[str] = ()


def directions(keys: Iterable[str], convention: str) -> Dict[str, bool]:
    """``column -> higher is better`` for the registered metrics of ``convention`` among
    ``keys`` and for ``latency_ms`` (lower is better); other columns are left out."""
    from basicsr.metrics import higher_is_better
    out: Dict[str, bool] = {}
    for key in keys:
        if key in LOWER_IS_BETTER_COLUMNS:
            out[key] = False
            continue
        try:
            out[key] = higher_is_better(key, convention)
        except DGFusionError:  # not a metric of this convention: shown, never ranked
            pass
    return out


def parse_compare(items: Sequence[str], option: str = '--compare') -> Dict[str, Path]:
    """``['SeAFusion=path/to/folder', ...]`` -> ``{'SeAFusion': Path(...)}``.

    Raises ConfigError naming ``option`` and the item for a missing ``=``, an empty name, a
    name given twice or a folder that does not exist.
    """
    out: Dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition('=')
        name = name.strip()
        if not sep or not name or not folder:
            raise ConfigError(f"{option} '{item}': expected NAME=FOLDER, "
                              "e.g. SeAFusion=results/seafusion")
        if name in out:
            raise ConfigError(f"{option} '{item}': method name '{name}' given twice")
        if not Path(folder).is_dir():
            raise ConfigError(f"{option} '{item}': folder {folder} not found")
        out[name] = Path(folder)
    return out


def compare_images(folder: Path, name: str, stems: Sequence[str]) -> Dict[str, Path]:
    """Image of method ``name`` per stem in ``folder``: ``<stem>.*``, else ``<stem>_<name>.*``
    or ``<stem>-<name>.*`` (published results are often named ``carLight_SeAFusion.jpg``).
    Stems without one are left out."""
    files = list_images(folder)
    out: Dict[str, Path] = {}
    for stem in stems:
        for key in (stem, f"{stem}_{name}", f"{stem}-{name}"):
            if key in files:
                out[stem] = files[key]
                break
    return out


def thumbnail_uri(path: Path, box: int = THUMB_BOX) -> str:
    """``data:image/jpeg;base64,...`` of ``path`` scaled (area resampling) to at most ``box``
    pixels on its longer side; 16-bit images are mapped to 8 bits by the default
    ``percentile:0.5,99.5`` rule, gray stays gray. DataError when the file cannot be read."""
    img = to_u8(read_image(path), IrRange())  # (H,W) or (H,W,3) RGB uint8
    h, w = img.shape[:2]
    scale = min(1.0, box / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise DataError(f"{path}: could not encode a thumbnail")
    return 'data:image/jpeg;base64,' + base64.b64encode(buf.tobytes()).decode('ascii')


def _href(path: Path, base: Path) -> str:
    """URL of ``path`` relative to folder ``base`` (percent-encoded, so '#', '?', '%' work);
    a ``file:`` URL where no relative path exists (another drive on Windows)."""
    try:
        rel = os.path.relpath(Path(path).resolve(), Path(base).resolve())
    except ValueError:
        return Path(path).resolve().as_uri()
    return quote(Path(rel).as_posix())


def _best(values: Sequence[object], higher: bool) -> Optional[float]:
    finite = [float(v) for v in values if is_finite(v)]
    if not finite:
        return None
    return max(finite) if higher else min(finite)


def _value_cell(value: object, best: Optional[float], note: str = '') -> str:
    """``<td>`` of a number: full precision in ``data-value``, 4 decimals shown."""
    raw = csv_cell(value) if is_finite(value) else ''
    marked = best is not None and is_finite(value) and float(value) == best
    cls = ' class="best" title="best in this column"' if marked else ''
    return (f'<td data-value="{html.escape(raw)}"{cls}>'
            f'{html.escape(cell(value) + note)}</td>')


def _of(count: int, total: int) -> str:
    """`` (k of N)`` after a mean over fewer images than the table holds, else nothing."""
    return f" ({count} of {total})" if count < total else ''


def _header(keys: Sequence[str], lead: Sequence[str], higher_better: Mapping[str, bool]) -> str:
    cells = [f'<th>{html.escape(k)}</th>' for k in lead]
    for key in keys:
        arrow = {True: ' \u2191', False: ' \u2193'}.get(higher_better.get(key), '')
        tip = {True: 'higher is better', False: 'lower is better'}.get(
            higher_better.get(key), 'not ranked')
        cells.append(f'<th data-column="{html.escape(key)}" title="{tip}; click to sort">'
                     f'{html.escape(key)}{arrow}</th>')
    return '<thead><tr>' + ''.join(cells) + '</tr></thead>'


def _means_table(table: MetricTable, keys: Sequence[str]) -> List[str]:
    """One row of means per method, the best method marked per column."""
    means = {name: mean_row(rows) for name, rows in table.groups.items() if rows}
    best = {k: _best([m[k] for m in means.values()], table.higher_better[k])
            for k in keys if k in table.higher_better}
    out = ['<table class="sortable means">',
           _header(keys, ['method', 'images'], table.higher_better), '<tbody>']
    for name, rows in table.groups.items():
        if not rows:
            continue
        count = counts(rows)
        cells = ''.join(_value_cell(means[name][k], best.get(k), _of(count[k], len(rows)))
                        for k in keys)
        out.append(f'<tr><td>{html.escape(name)}</td><td data-value="{len(rows)}">{len(rows)}</td>'
                   f'{cells}</tr>')
    out.append('</tbody></table>')
    return out


def _rows_table(table: MetricTable, keys: Sequence[str]) -> List[str]:
    """Every per-image row (a ``method`` column when there are several groups), the best
    value of each column marked, and the mean row of each group below."""
    several = len(table.groups) > 1
    everything = [r for rows in table.groups.values() for r in rows]
    best = {k: _best([r.get(k) for r in everything], table.higher_better[k])
            for k in keys if k in table.higher_better}
    lead = (['method'] if several else []) + ['image']
    out = ['<table class="sortable images">', _header(keys, lead, table.higher_better), '<tbody>']
    for name, rows in table.groups.items():
        for row in rows:
            head = (f'<td>{html.escape(name)}</td>' if several else '') + \
                f'<td>{html.escape(str(row["image"]))}</td>'
            out.append('<tr>' + head + ''.join(_value_cell(row.get(k), best.get(k)) for k in keys)
                       + '</tr>')
    out += ['</tbody>', '<tfoot>']
    for name, rows in table.groups.items():
        if not rows:
            continue
        mean, count = mean_row(rows), counts(rows)
        head = (f'<td>{html.escape(name)}</td>' if several else '') + \
            f'<td>mean ({len(rows)} images)</td>'
        out.append('<tr class="mean">' + head + ''.join(
            _value_cell(mean[k], None, _of(count[k], len(rows))) for k in keys) + '</tr>')
    out += ['</tfoot>', '</table>']
    return out


def _table_html(table: MetricTable) -> List[str]:
    first = next((rows for rows in table.groups.values() if rows), [])
    out = [f'<h3>{html.escape(table.title)}</h3>'] if table.title else []
    if not first:
        return out + ['<p>no images</p>']
    keys = value_keys(first)
    if len(table.groups) > 1:
        out += ['<h4>means</h4>'] + _means_table(table, keys) + ['<h4>per image</h4>']
    return out + _rows_table(table, keys)


def _thumbs_html(section: Section, base: Path, max_rows: int) -> List[str]:
    stems = list(section.stems)[:max_rows]
    out = ['<table class="thumbs"><thead><tr><th>image</th>'
           + ''.join(f'<th>{html.escape(c.title)}</th>' for c in section.columns) + '</tr></thead>',
           '<tbody>']
    bar = tqdm(stems, desc='report thumbnails', unit='pair', leave=False,
               disable=not sys.stderr.isatty())
    for stem in bar:
        cells = [f'<th scope="row">{html.escape(stem)}</th>']
        for column in section.columns:
            path = column.paths.get(stem)
            if path is None or not Path(path).is_file():
                cells.append('<td class="missing">no image</td>')
                continue
            try:
                uri = thumbnail_uri(Path(path))
            except (DGFusionError, cv2.error) as err:
                cells.append(f'<td class="missing">unreadable: {html.escape(one_line(err))}</td>')
                continue
            alt = html.escape(f"{stem} {column.title}")
            cells.append(f'<td><a href="{html.escape(_href(path, base))}">'
                         f'<img src="{uri}" alt="{alt}" title="{alt}"></a></td>')
        out.append('<tr>' + ''.join(cells) + '</tr>')
    bar.close()
    out.append('</tbody></table>')
    if len(section.stems) > max_rows:
        out.append(f'<p class="note">thumbnails of the first {max_rows} of {len(section.stems)} '
                   'pairs; the tables hold every pair</p>')
    return out


STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:2px 6px}
td[data-value]{text-align:right;font-variant-numeric:tabular-nums}
table.sortable thead th{cursor:pointer;background:#f2f2f2}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:bold;background:#d8f0d8}
tr.mean td{font-weight:bold;border-top:2px solid #888}
table.thumbs td{text-align:center;vertical-align:middle}
table.thumbs img{display:block;margin:auto}
td.missing{color:#999;font-size:small}
p.note{color:#555;font-size:small}
"""

# Click a header: sort the body rows by that column (numbers by data-value; n/a last).
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var up = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (x.hasAttribute('data-value')) {
          var u = x.getAttribute('data-value'), v = y.getAttribute('data-value');
          if (u === '' || v === '') { return (u === '') - (v === ''); }
          return up ? u - v : v - u;
        }
        var c = x.textContent.localeCompare(y.textContent, undefined, {numeric: true});
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def render_report(title: str, sections: Sequence[Section], base: Path,
                  max_rows: int = MAX_THUMB_ROWS) -> str:
    """The HTML text of a report that will live in folder ``base`` (links are relative to it)."""
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
             f'<title>{html.escape(title)}</title>', f'<style>{STYLE}</style></head><body>',
             f'<h1>{html.escape(title)}</h1>',
             '<p class="note">Best value per column in bold on green (\u2191 higher is better, '
             '\u2193 lower is better); click a column header to sort; n/a: not computable for '
             'that image, means are over the computed values. Thumbnails link to the full '
             'images.</p>']
    for section in sections:
        parts.append(f'<h2>{html.escape(section.title)}</h2>')
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes]
        for table in section.tables:
            parts += _table_html(table)
        if section.columns and section.stems:
            parts += ['<h3>images</h3>'] + _thumbs_html(section, base, max_rows)
    parts += [f'<script>{SCRIPT}</script>', '</body></html>', '']
    return '\n'.join(parts)


def write_report(path: Path, title: str, sections: Sequence[Section],
                 max_rows: int = MAX_THUMB_ROWS) -> Path:
    """:func:`render_report` written atomically to ``path``; returns ``path``."""
    path = Path(path)
    atomic_write_text(path, render_report(title, sections, path.parent, max_rows))
    return path


def convention_table(groups: Groups, convention: str, title: Optional[str] = None) -> MetricTable:
    """A table of ``groups`` (method -> rows) ranked by the directions of ``convention``'s
    metrics, titled ``<convention> convention`` unless ``title`` is given."""
    first = next((rows for rows in groups.values() if rows), [])
    return MetricTable(f"{convention} convention" if title is None else title, groups,
                       directions(value_keys(first), convention))


def source_columns(pairs: Sequence[Mapping[str, object]]) -> Tuple[List[str], List[ImageColumn]]:
    """Stems and the vis / ir thumbnail columns of dataset-style pairs
    (``{'stem', 'vis', 'ir', ...}`` with file paths)."""
    stems = [str(p['stem']) for p in pairs]
    columns = [ImageColumn(role, {str(p['stem']): Path(p[role]) for p in pairs
                                  if isinstance(p.get(role), (str, os.PathLike))})
               for role in ('vis', 'ir')]
    return stems, columns
