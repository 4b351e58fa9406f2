"""Evaluate a DGFusion checkpoint on RoadScene val, TNO and VIFB next to published methods and
two baselines, and write the model card's tables and comparison figure.

Usage (from the repository root)::

    python scripts/reference_eval.py                 # reference model, all sets, updates the card
    python scripts/reference_eval.py --weights CKPT --no-card --out-dir /tmp/eval
    python scripts/reference_eval.py --sets vifb --images carLight fight --no-card --out-dir /tmp/two

Every number comes from the project's own tools, run as a user runs them:

1. ``scripts/fuse.py`` fuses each set with the checkpoint (``--weights``, default the shipped
   reference model) and with the two weight-free baselines (``--engine average|maximum``:
   pixel average / maximum of the visible luminance and the infrared, visible colour kept);
2. ``scripts/evaluate.py`` scores them and the methods' published fused images (VIFB: IFCNN,
   SeAFusion, U2Fusion, VSMWLS; TNO: SeAFusion) with the 8 standard metrics under the
   ``cddfuse`` convention (VIFB also under ``vifb``, whose evaluator defines 6 of them: no SCD,
   no VIF), writing per-image CSVs to ``--out-dir``;
3. the tables (means read back from those CSVs), a border check of the fused images and, for
   VIFB, the comparison figure are written into ``--card`` between its
   ``<!-- reference-eval:begin -->`` / ``<!-- reference-eval:end -->`` markers;
4. ``report.html`` beside the CSVs shows every set's tables (best value per column marked,
   sortable) and per pair thumbnails vis | ir | ours | the baselines | the published methods,
   each linking to its full image.

Data (``--data``, default ``datasets/`` in the repository), as laid out by
``python scripts/download_data.py roadscene tno vifb``: ``RoadScene/val/{vis,ir}``,
``TNO/{vis,ir}``, ``TNO/fused/SeAFusion``, ``VIFB/{vis,ir}`` and ``VIFB/fused/<method>``.
These sets are for testing only; nothing here trains or selects a checkpoint.

Exit status: 0 done; 1 a set failed (named); 2 bad arguments or missing data; 130 interrupted.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from basicsr.data.download import download_hint, file_sha256
from basicsr.inference.loader import REFERENCE_WEIGHTS, REPO_ROOT as REPO
from basicsr.metrics import default_metrics, higher_is_better
from basicsr.inference.report import atomic_write_text, read_csv
from basicsr.inference.html_report import (REPORT_NAME, ImageColumn, Section,
                                           convention_table, write_report)
from basicsr.utils import img_util
from basicsr.utils.cli import command, exit_status, run_module
from basicsr.utils.fs import check_outputs_apart
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.logger import console

OURS, BASELINES = 'ours', ('average', 'maximum')
VIFB_METHODS = ('IFCNN', 'SeAFusion', 'U2Fusion', 'VSMWLS')
BEGIN, END = '<!-- reference-eval:begin -->', '<!-- reference-eval:end -->'
# (label, VIFB stem): a night scene, a car, people, glare
FIGURE_PAIRS = (('night scene', 'man'), ('car', 'nightCar'), ('people', 'fight'),
                ('glare', 'carLight'))
FIGURE_METHODS = ('SeAFusion', 'U2Fusion')
LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as the network's colour split


@dataclass(frozen=True)
class EvalSet:
    """One test set: source folders and the published methods' fused images (relative to --data)."""

    title: str
    vis: str
    ir: str
    references: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # label -> (folder, suffix)
    conventions: Tuple[str, ...] = ('cddfuse',)


SETS: Dict[str, EvalSet] = {
    'roadscene_val': EvalSet('RoadScene val', 'RoadScene/val/vis', 'RoadScene/val/ir'),
    'tno': EvalSet('TNO', 'TNO/vis', 'TNO/ir', {'SeAFusion': ('TNO/fused/SeAFusion', '')}),
    'vifb': EvalSet('VIFB', 'VIFB/vis', 'VIFB/ir',
                    {m: (f'VIFB/fused/{m}', '') for m in VIFB_METHODS}, ('cddfuse', 'vifb')),
}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', type=Path, default=REFERENCE_WEIGHTS,
                        help='checkpoint to evaluate (default: the shipped reference model)')
    parser.add_argument('--data', type=Path, default=REPO / 'datasets',
                        help='data root holding RoadScene/, TNO/, VIFB/ (default: datasets/)')
    parser.add_argument('--sets', nargs='+', default=list(SETS), choices=list(SETS),
                        help='sets to evaluate (default: all)')
    parser.add_argument('--images', nargs='+', default=None, metavar='STEM',
                        help='only these image stems (a quick check; no card, no figure)')
    parser.add_argument('--work', type=Path, default=REPO / 'results' / 'reference_eval',
                        help='where the fused images go')
    parser.add_argument('--out-dir', type=Path, default=REPO / 'pretrained_model' / 'eval',
                        help='where the per-image CSVs go')
    parser.add_argument('--card', type=Path, default=REPO / 'pretrained_model' / 'README.md',
                        help='model card to update between its reference-eval markers')
    parser.add_argument('--no-card', action='store_true', help='leave the model card alone')
    parser.add_argument('--figure', type=Path,
                        default=REPO / 'pretrained_model' / 'DGFusion_RoadScene_vifb.png',
                        help='comparison figure written with the card (VIFB)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='metric worker processes')
    return parser.parse_args(argv)


# ---------------------------------------------------------------- running the tools

def tool(name: str, *args: object) -> subprocess.CompletedProcess:
    """Run the command ``basicsr.tools.<name>`` in a fresh process of this interpreter; its
    standard output is captured, its errors are shown as they come."""
    module = f'basicsr.tools.{name}'
    console(' '.join(['$ python -m', module, *map(str, args)]))
    return run_module(module, args, stdout=subprocess.PIPE, text=True)


def subset_sources(es: EvalSet, data: Path, stems: Optional[Sequence[str]], work: Path
                   ) -> Tuple[Path, Path]:
    """The set's vis/ir folders, or folders of links to the chosen stems' files."""
    vis, ir = data / es.vis, data / es.ir
    for role, folder in (('visible', vis), ('infrared', ir)):
        if not folder.is_dir():
            raise DataError(f"{es.title}: {role} folder {folder} not found; get it with: "
                            f"{download_hint(folder)} (or set --data)")
    if stems is None:
        return vis, ir
    out = []
    for role, folder in (('vis', vis), ('ir', ir)):
        files = img_util.list_images(folder)
        missing = [s for s in stems if s not in files]
        if missing:
            raise DataError(f"{es.title}: no {role} image for {', '.join(missing)} in {folder}")
        target = work / 'sources' / role
        target.mkdir(parents=True, exist_ok=True)
        for old in target.iterdir():
            old.unlink()
        for s in stems:
            (target / files[s].name).symlink_to(files[s].resolve())
        out.append(target)
    return out[0], out[1]


def fuse_set(es: EvalSet, vis: Path, ir: Path, weights: Path, work: Path) -> None:
    """Our fused images and the baselines' into ``work/<label>/``."""
    runs = [(OURS, ('--weights', weights))] + [(b, ('--engine', b)) for b in BASELINES]
    for label, how in runs:
        done = tool('fuse', *how, '--vis', vis, '--ir', ir, '--out', work / label)
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            raise DataError(f"{es.title}: fuse.py ({label}) exited with {done.returncode}")


def score_set(key: str, es: EvalSet, vis: Path, ir: Path, data: Path, work: Path,
              out_dir: Path, workers: int) -> Dict[str, Path]:
    """Per-image CSVs (one per convention) of ours, the baselines and the published methods."""
    folders: List[Path] = [work / OURS] + [work / b for b in BASELINES]
    suffixes: List[str] = ['', '', '']
    for label, (folder, suffix) in es.references.items():
        if suffix:
            folders.append(data / folder)
        else:  # label the folder by a link named after the method
            link = work / label
            if link.is_symlink():
                link.unlink()
            link.symlink_to((data / folder).resolve())
            folders.append(link)
        suffixes.append(suffix)
    csvs = {}
    for conv in es.conventions:
        path = out_dir / f"{key}_{conv}.csv"
        done = tool('evaluate', '--fused', *folders, '--fused-suffix', *suffixes, '--vis', vis,
                    '--ir', ir, '--convention', conv, '--metrics', *default_metrics(conv),
                    '--workers', workers, '--out', path, '--no-report')
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            raise DataError(f"{es.title}: evaluate.py ({conv}) exited with {done.returncode}")
        csvs[conv] = path
    return csvs


# ---------------------------------------------------------------- tables

def read_means(path: Path) -> Tuple[Dict[str, Dict[str, float]], int]:
    """``method -> {metric: mean}`` from an evaluate.py CSV (its per-method ``mean`` rows),
    and the number of images of ours."""
    means: Dict[str, Dict[str, float]] = {}
    images = 0
    with open(path, newline='', encoding='utf-8') as fh:
        for row in csv.DictReader(fh):
            method = row.pop('method', OURS)
            image = row.pop('image')
            if image == 'mean':
                means[method] = {m: float(v) for m, v in row.items()}
            elif image != 'images' and method == OURS:
                images += 1
    return means, images


def method_name(label: str, ours_name: str) -> str:
    return {OURS: f"**{ours_name} (ours)**", 'average': 'baseline: pixel average',
            'maximum': 'baseline: pixel maximum'}.get(label, label)


def means_markdown(means: Dict[str, Dict[str, float]], ours_name: str,
                   references: Sequence[str], convention: str) -> List[str]:
    """Markdown rows per method and, with several published methods, their median and a
    line saying on which metrics ours is at least as good (>=, or <= where lower is better)."""
    metrics = list(means[OURS])
    lines = ['| method | ' + ' | '.join(metrics) + ' |', '|---|' + '---:|' * len(metrics)]
    order = [OURS] + list(references) + list(BASELINES)
    for label in order:
        if label in means:
            lines.append(f"| {method_name(label, ours_name)} | "
                         + ' | '.join(f"{means[label][m]:.4f}" for m in metrics) + ' |')
    if len(references) > 1:
        median = {m: statistics.median(means[r][m] for r in references) for m in metrics}
        lines.append(f"| median of the {len(references)} methods | "
                     + ' | '.join(f"{median[m]:.4f}" for m in metrics) + ' |')
        hits = [m for m in metrics if (means[OURS][m] >= median[m]) == higher_is_better(m, convention)
                or means[OURS][m] == median[m]]
        lines.append("| ours at or above the median | " + ' | '.join(
            'yes' if m in hits else 'no' for m in metrics) + ' |')
        lines += ['', f"Ours is at or above the median of the {len(references)} methods on "
                      f"**{len(hits)} of {len(metrics)}** metrics"
                      + (f" ({', '.join(hits)})." if hits else '.')]
    return lines


# ---------------------------------------------------------------- HTML report

def report_section(es: EvalSet, vis: Path, ir: Path, data: Path, work: Path,
                   csvs: Dict[str, Path]) -> Section:
    """One set of ``report.html``: a table per convention read back from its CSV, and per pair
    thumbnails vis | ir | ours | the baselines | the published methods."""
    tables = [convention_table(read_csv(path), conv) for conv, path in csvs.items()]
    sources = img_util.list_images(vis), img_util.list_images(ir)
    stems = sorted(set(sources[0]) & set(sources[1]))
    columns = [ImageColumn('vis', sources[0]), ImageColumn('ir', sources[1])]
    columns += [ImageColumn(label, img_util.list_images(work / label))
                for label in (OURS,) + BASELINES]
    for label, (folder, suffix) in es.references.items():
        files = img_util.list_images(data / folder)
        columns.append(ImageColumn(label, {s: files[s + suffix] for s in stems
                                           if s + suffix in files}))
    return Section(es.title, tables, stems, columns)


# ---------------------------------------------------------------- border check

def border_steps(folder: Path) -> Tuple[Dict[str, float], float, int]:
    """Mean over images of (outermost line - next line) in gray levels per side, the mean
    absolute step between neighbouring interior lines, and the number of images."""
    sides = {'top': [], 'bottom': [], 'left': [], 'right': []}
    interior = []
    files = img_util.list_images(folder)
    for path in files.values():
        img = img_util.read_image(path)
        gray = img.astype(np.float64) if img.ndim == 2 else img.astype(np.float64) @ LUMA
        rows, cols = gray.mean(axis=1), gray.mean(axis=0)
        sides['top'].append(rows[0] - rows[1])
        sides['bottom'].append(rows[-1] - rows[-2])
        sides['left'].append(cols[0] - cols[1])
        sides['right'].append(cols[-1] - cols[-2])
        interior.append(np.abs(np.diff(rows[1:-1])).mean() / 2 + np.abs(np.diff(cols[1:-1])).mean() / 2)
    return ({k: float(np.mean(v)) for k, v in sides.items()}, float(np.mean(interior)), len(files))


def border_markdown(works: Dict[str, Path]) -> List[str]:
    lines = ['| set | images | top | bottom | left | right | interior neighbours (abs) |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for title, folder in works.items():
        steps, inner, n = border_steps(folder)
        lines.append(f"| {title} | {n} | " + ' | '.join(f"{steps[s]:+.2f}" for s in
                                                      ('top', 'bottom', 'left', 'right'))
                     + f" | {inner:.2f} |")
    return lines


# ---------------------------------------------------------------- figure

def figure(data: Path, work: Path, out: Path) -> None:
    """4 VIFB pairs, columns vis | ir | ours | SeAFusion | U2Fusion, as PNG."""
    from basicsr.utils.plotting import image_table
    rows = []
    for _, stem in FIGURE_PAIRS:
        vis = img_util.list_images(data / SETS['vifb'].vis)[stem]
        ir = img_util.list_images(data / SETS['vifb'].ir)[stem]
        ours = img_util.list_images(work / OURS)[stem]
        refs = [img_util.list_images(data / SETS['vifb'].references[m][0])[stem]
                for m in FIGURE_METHODS]
        rows.append([img_util.read_image(p) for p in [vis, ir, ours] + refs])
    img = image_table(rows, ['visible', 'infrared', 'DGFusion (ours)'] + list(FIGURE_METHODS),
                      [f"{stem} ({label})" for label, stem in FIGURE_PAIRS])
    img_util.write_image(out, img)


# ---------------------------------------------------------------- card

def write_card(card: Path, block: List[str]) -> None:
    text = card.read_text(encoding='utf-8') if card.is_file() else ''
    if BEGIN not in text or END not in text:
        raise ConfigError(f"--card: {card} has no '{BEGIN}' ... '{END}' markers to write between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(card, head + BEGIN + '\n' + '\n'.join(block) + '\n' + END + tail)


def card_block(args: argparse.Namespace, csvs: Dict[str, Dict[str, Path]],
               works: Dict[str, Path]) -> List[str]:
    ours_name = args.weights.stem
    rel = lambda p: os.path.relpath(p, args.card.parent)  # noqa: E731
    lines = ['<!-- written by scripts/reference_eval.py; edit the script, not this block -->', '',
             f"Weights: `{args.weights.name}`, SHA-256 `{file_sha256(args.weights)}`.", '',
             'Reproduce (the test sets in `datasets/`, or `--data DIR`): '
             '`python scripts/download_data.py roadscene tno vifb`, then '
             '`python scripts/reference_eval.py`. Per-image values: ' +
             ', '.join(f"[`{rel(p)}`]({rel(p)})" for c in csvs.values() for p in c.values()) + '.']
    for key, by_conv in csvs.items():
        es = SETS[key]
        for conv, path in by_conv.items():
            means, n = read_means(path)
            lines += ['', f"#### {es.title} ({n} pairs), `{conv}` convention", '']
            lines += means_markdown(means, ours_name, list(es.references), conv)
    lines += ['', '#### Border check', '',
              'Mean gray level of the outermost row/column minus the next one, averaged over the '
              "set's images, next to the mean absolute step between neighbouring interior "
              'rows/columns (our fused images; the sources for comparison: a dark fused border '
              'where the infrared source has one is the source, not the network):', '']
    lines += border_markdown(works)
    if 'vifb' in csvs:
        lines += ['', '#### VIFB examples', '',
                  f"![vis, ir, ours, SeAFusion, U2Fusion on 4 VIFB pairs]({rel(args.figure)})"]
    return lines


# ---------------------------------------------------------------- main

def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers: expected a positive integer, got {args.workers}")
    if not args.weights.is_file():
        raise ConfigError(f"--weights: {args.weights} not found")
    if not args.data.is_dir():
        raise ConfigError(f"--data: {args.data} not found (the folder holding RoadScene/, TNO/, "
                          f"VIFB/; get them with: python scripts/download_data.py roadscene tno vifb)")
    write = not args.no_card and args.images is None
    check_outputs_apart([('--work', args.work), ('--out-dir', args.out_dir)]
                        + ([('--figure', args.figure)] if write else []),
                        [('--weights', args.weights), ('--data', args.data)])
    if not args.no_card and args.images is not None:
        raise ConfigError('--images: a subset never updates the card; add --no-card')
    csvs: Dict[str, Dict[str, Path]] = {}
    works: Dict[str, Path] = {}
    sections: List[Section] = []
    failed = []
    for key in args.sets:
        es = SETS[key]
        work = args.work / key
        try:
            vis, ir = subset_sources(es, args.data, args.images, work)
            fuse_set(es, vis, ir, args.weights, work)
            csvs[key] = score_set(key, es, vis, ir, args.data, work, args.out_dir, args.workers)
            sections.append(report_section(es, vis, ir, args.data, work, csvs[key]))
            works[f"{es.title}: ours"] = work / OURS
            works[f"{es.title}: visible source"] = vis
            works[f"{es.title}: infrared source"] = ir
        except DataError as err:
            console(f"failed: {key}: {err}", err=True)
            failed.append(key)
    if write and not failed:
        if 'vifb' in csvs:
            figure(args.data, args.work / 'vifb', args.figure)
            console(f"figure -> {args.figure}")
        write_card(args.card, card_block(args, csvs, works))
        console(f"tables -> {args.card}")
    if sections:
        report = write_report(args.out_dir / REPORT_NAME, f"{args.weights.stem}: reference evaluation",
                              sections)
        console(f"report -> {report}")
    for line in border_markdown(works):
        console(line)
    return exit_status(failed, 'set(s)')


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
