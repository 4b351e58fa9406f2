"""Small raster charts and labelled image grids drawn with OpenCV (no plotting library needed).

Images are (H,W,3) uint8 RGB, as everywhere in this package. Used for the training curves
and the comparison figure of the model card.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

Color = Tuple[int, int, int]
FONT = cv2.FONT_HERSHEY_SIMPLEX
# colour-blind-safe palette (Okabe-Ito), RGB
PALETTE: Tuple[Color, ...] = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167),
                              (230, 159, 0), (86, 180, 233), (240, 228, 66), (0, 0, 0))
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (225, 225, 225)


def nice_ticks(lo: float, hi: float, target: int = 5) -> List[float]:
    """About ``target`` round tick values (1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_text(value: float, step: float) -> str:
    """Tick label with as many decimals as the tick ``step`` needs: ``1.5k`` for thousands,
    ``2.5e-04`` for small values, else fixed point."""
    if abs(value) >= 1000 and float(value).is_integer():
        return f"{value / 1000:g}k"
    if 0 < step < 0.01:
        return f"{value:.{max(1, int(-math.floor(math.log10(step))) - 3)}e}" if value else '0'
    decimals = max(0, int(-math.floor(math.log10(step) + 1e-9))) if step > 0 else 0
    return f"{value:.{decimals}f}"


def put_text(img: np.ndarray, text: str, org: Tuple[int, int], scale: float = 0.4,
             color: Color = BLACK, thickness: int = 1, anchor: str = 'left') -> None:
    """Draw ``text`` with its baseline at ``org``; ``anchor`` left, center or right."""
    (w, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
    x = org[0] - (w // 2 if anchor == 'center' else w if anchor == 'right' else 0)
    cv2.putText(img, text, (int(x), int(org[1])), FONT, scale, color, thickness, cv2.LINE_AA)


def line_chart(series: Sequence[Tuple[str, Sequence[float], Sequence[float]]], title: str,
               size: Tuple[int, int] = (300, 460), x_label: str = 'iteration',
               log_y: bool = False, markers: bool = False) -> np.ndarray:
    """One chart with a line per ``(label, xs, ys)``; non-finite points are left out.

    Args:
        series: the lines, drawn in :data:`PALETTE` order, labelled in a legend when > 1.
        title: text above the plot area.
        size: (height, width) of the returned image.
        x_label: text under the x axis.
        log_y: logarithmic y axis (only positive values are drawn).
        markers: draw a dot at every point (for sparse series such as validation scores).

    Returns:
        (H,W,3) uint8 RGB.
    """
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 58, 12, 26, 38
    put_text(img, title, (w // 2, 17), 0.5, anchor='center')
    pts = []
    for label, xs, ys in series:
        arr = np.array([(x, y) for x, y in zip(xs, ys)
                        if math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y)], float)
        pts.append((label, arr))
    all_pts = [a for _, a in pts if len(a)]
    if not all_pts:
        put_text(img, 'no data', (w // 2, h // 2), anchor='center')
        return img
    data = np.concatenate(all_pts)
    xs_all = data[:, 0]
    ys_all = np.log10(data[:, 1]) if log_y else data[:, 1]
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    y0, y1 = float(ys_all.min()), float(ys_all.max())
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.05 or max(abs(y0) * 0.05, 1e-3)
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = w - left - right, h - top - bottom

    def to_px(x: float, y: float) -> Tuple[int, int]:
        return (int(round(left + (x - x0) / (x1 - x0) * pw)),
                int(round(top + (1 - (y - y0) / (y1 - y0)) * ph)))

    y_ticks = (nice_ticks(10 ** y0, 10 ** y1) if log_y else nice_ticks(y0, y1))
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else abs(y_ticks[0]) or 1.0
    for t in y_ticks:
        ty = math.log10(t) if log_y and t > 0 else t
        if log_y and t <= 0 or not y0 <= ty <= y1:
            continue
        _, py = to_px(x0, ty)
        cv2.line(img, (left, py), (w - right, py), GRID, 1)
        put_text(img, tick_text(t, y_step), (left - 4, py + 4), 0.35, anchor='right')
    x_ticks = nice_ticks(x0, x1)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for t in x_ticks:
        px, _ = to_px(t, y0)
        cv2.line(img, (px, top), (px, h - bottom), GRID, 1)
        put_text(img, tick_text(t, x_step), (px, h - bottom + 14), 0.35, anchor='center')
    cv2.rectangle(img, (left, top), (w - right, h - bottom), BLACK, 1)
    put_text(img, x_label, (left + pw // 2, h - 6), 0.4, anchor='center')
    for k, (_, arr) in enumerate(pts):
        if not len(arr):
            continue
        color = PALETTE[k % len(PALETTE)]
        yv = np.log10(arr[:, 1]) if log_y else arr[:, 1]
        poly = np.array([to_px(x, y) for x, y in zip(arr[:, 0], yv)], np.int32)
        cv2.polylines(img, [poly], False, color, 1, cv2.LINE_AA)
        if markers:
            for p in poly:
                cv2.circle(img, tuple(int(v) for v in p), 2, color, -1, cv2.LINE_AA)
    if len(series) > 1:
        for k, (label, _) in enumerate(pts):
            y = top + 14 + 14 * k
            color = PALETTE[k % len(PALETTE)]
            cv2.line(img, (w - right - 118, y - 4), (w - right - 100, y - 4), color, 2)
            put_text(img, label, (w - right - 96, y), 0.35, color)
    return img


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (shorter at the start); same length as ``values``."""
    v = np.asarray(values, float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.arange(1, len(v) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def grid(panels: Sequence[np.ndarray], cols: int, gap: int = 6) -> np.ndarray:
    """Panels of equal size in rows of ``cols``, separated by ``gap`` white pixels."""
    h, w = panels[0].shape[:2]
    rows = math.ceil(len(panels) / cols)
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
    for k, p in enumerate(panels):
        r, c = divmod(k, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = p
    return out


def to_rgb_u8(img: np.ndarray) -> np.ndarray:
    """Gray (H,W) or (H,W,1) -> (H,W,3); RGB passes through."""
    if img.ndim == 2:
        img = img[:, :, None]
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def image_table(rows: Sequence[Sequence[np.ndarray]], col_titles: Sequence[str],
                row_titles: Optional[Sequence[str]] = None, cell_height: int = 210,
                gap: int = 4) -> np.ndarray:
    """Images in a table with a title row; each image is scaled to ``cell_height`` (area
    resampling), the cells of a row share the first image's aspect ratio.

    Args:
        rows: per row, one uint8 image per column (gray or RGB), same size within a row.
        col_titles: text above each column.
        row_titles: optional text at the bottom-left of each row's first cell.

    Returns:
        (H,W,3) uint8 RGB.
    """
    head = 24
    scaled: List[List[np.ndarray]] = []
    cell_width = 0
    for cells in rows:
        h0, w0 = cells[0].shape[:2]
        cw = int(round(w0 * cell_height / h0))
        scaled.append([cv2.resize(to_rgb_u8(c), (cw, cell_height), interpolation=cv2.INTER_AREA)
                       for c in cells])
        cell_width = max(cell_width, cw)
    ncol = len(col_titles)
    width = ncol * cell_width + (ncol - 1) * gap
    out = np.full((head + len(rows) * (cell_height + gap), width, 3), 255, np.uint8)
    for c, title in enumerate(col_titles):
        put_text(out, title, (c * (cell_width + gap) + cell_width // 2, 17), 0.55, anchor='center')
    for r, cells in enumerate(scaled):
        y = head + r * (cell_height + gap)
        for c, img in enumerate(cells):
            x = c * (cell_width + gap) + (cell_width - img.shape[1]) // 2
            out[y:y + cell_height, x:x + img.shape[1]] = img
        if row_titles:
            org = (6, y + cell_height - 8)
            put_text(out, row_titles[r], org, 0.5, BLACK, 3)
            put_text(out, row_titles[r], org, 0.5, WHITE, 1)
    return out
