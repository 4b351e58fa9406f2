"""Per-image result tables: Markdown for the console, CSV files, means over what was computed.

Shared by ``test.py``, validation and ``scripts/evaluate.py`` so their tables read alike. A
row is ``{'image': name, column: float, ...}``. A value that is not finite (a metric that is
undefined for an image, e.g. SSIM on an image smaller than its window) is shown as ``n/a``;
means are taken over the finite values and say over how many images they are.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Union

NA = 'n/a'
Row = Dict[str, Any]
Groups = Mapping[str, Sequence[Row]]


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def value_keys(rows: Sequence[Row]) -> List[str]:
    """The value columns of ``rows`` (every key but ``image``), in first-row order."""
    return [k for k in (rows[0] if rows else {}) if k != 'image']


def counts(rows: Sequence[Row]) -> Dict[str, int]:
    """Number of finite values per column."""
    return {k: sum(is_finite(r.get(k)) for r in rows) for k in value_keys(rows)}


def mean_row(rows: Sequence[Row]) -> Row:
    """Column means over the finite values (NaN where there is none), labelled ``mean``."""
    out: Row = {'image': 'mean'}
    for key in value_keys(rows):
        vals = [float(r[key]) for r in rows if is_finite(r.get(key))]
        out[key] = math.fsum(vals) / len(vals) if vals else float('nan')
    return out


def cell(value: Any, digits: int = 4) -> str:
    """Text of one table cell: strings as they are, numbers with ``digits`` decimals, else n/a."""
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}" if is_finite(value) else NA


def csv_cell(value: Any) -> str:
    """Text of one CSV cell: full precision (``repr``), so values can be compared exactly."""
    if isinstance(value, str):
        return value
    return repr(float(value)) if is_finite(value) else NA


def _mean_cells(rows: Sequence[Row], keys: Sequence[str], digits: int) -> List[str]:
    if not rows:
        return [NA] * len(keys)
    mean, count, n = mean_row(rows), counts(rows), len(rows)
    return [cell(mean[k], digits) + (f" ({count[k]} of {n})" if count[k] < n else '') for k in keys]


def markdown_table(rows: Sequence[Row], title: str = '', with_mean: bool = True,
                   digits: int = 4) -> str:
    """Markdown table of ``rows`` and, when ``with_mean``, a ``mean (N images)`` row; a mean
    over fewer images than the table holds says ``(k of N)``."""
    if not rows:
        return f"{title}: no images" if title else 'no images'
    keys = value_keys(rows)
    lines = ([f"### {title}"] if title else []) + [
        '| image | ' + ' | '.join(keys) + ' |', '|---|' + '---:|' * len(keys)]
    for row in rows:
        lines.append(f"| {row['image']} | " + ' | '.join(cell(row.get(k), digits) for k in keys) + ' |')
    if with_mean:
        lines.append(f"| mean ({len(rows)} images) | " + ' | '.join(_mean_cells(rows, keys, digits)) + ' |')
    return '\n'.join(lines)


def means_table(groups: Groups, digits: int = 4) -> str:
    """Markdown table with one row of means per group (e.g. per method)."""
    first = next((rows for rows in groups.values() if rows), [])
    keys = value_keys(first)
    lines = ['| method | images | ' + ' | '.join(keys) + ' |', '|---|---:|' + '---:|' * len(keys)]
    for name, rows in groups.items():
        lines.append(f"| {name} | {len(rows)} | " + ' | '.join(_mean_cells(rows, keys, digits)) + ' |')
    return '\n'.join(lines)


def csv_text(data: Union[Sequence[Row], Groups]) -> str:
    """CSV of per-image rows, then a ``mean`` row (over the finite values) and, when a column
    has n/a values, an ``images`` row with the count each mean is over. Given several groups
    (a mapping name -> rows), a first ``method`` column is added and each group ends with its
    own mean row."""
    import csv
    import io
    groups = dict(data) if isinstance(data, Mapping) else {'': list(data)}
    several = len(groups) > 1
    first = next((rows for rows in groups.values() if rows), [])
    keys = value_keys(first)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow((['method'] if several else []) + ['image'] + keys)
    for name, rows in groups.items():
        lead = [name] if several else []
        if not rows:
            continue
        for row in list(rows) + [mean_row(rows)]:
            writer.writerow(lead + [row['image']] + [csv_cell(row.get(k)) for k in keys])
        count = counts(rows)
        if any(c < len(rows) for c in count.values()):
            writer.writerow(lead + ['images'] + [str(count[k]) for k in keys])
    return buf.getvalue()


def read_csv(path: Union[str, Path]) -> Dict[str, List[Row]]:
    """The per-image rows of a :func:`csv_text` file, per method (``''`` without a ``method``
    column); ``mean`` and ``images`` rows are left out (:func:`mean_row` recomputes the means
    exactly: the values are written at full precision). ``n/a`` reads as NaN."""
    import csv
    groups: Dict[str, List[Row]] = {}
    with open(path, newline='', encoding='utf-8') as fh:
        for record in csv.DictReader(fh):
            method = record.pop('method', '')
            image = record.pop('image')
            rows = groups.setdefault(method, [])
            if image in ('mean', 'images'):
                continue
            rows.append({'image': image, **{k: float('nan') if v == NA else float(v)
                                              for k, v in record.items()}})
    return groups


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', newline='') as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(path: Union[str, Path], data: Union[Sequence[Row], Groups]) -> None:
    """:func:`csv_text` written atomically to ``path`` (nothing for an empty table)."""
    groups = data.values() if isinstance(data, Mapping) else [data]
    if not any(groups):
        return
    atomic_write_text(path, csv_text(data))
