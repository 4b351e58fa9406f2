"""The iteration loop: data, steps, logging, validation, checkpoints, resume, clean stops."""
from __future__ import annotations

import logging
import math
import sys
import time
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torchvision.utils import make_grid
from tqdm import tqdm

from basicsr.data import build_dataset, build_eval_loader, build_train_loader
from basicsr.data.contract import UnreadablePairsError, check_bad_pairs
from basicsr.models import MODEL_REGISTRY
from basicsr.models.fusion_model import TrainingDiverged
from basicsr.options import LoadedOptions
from basicsr.utils import dist as du
from basicsr.utils.checkpoint import (CKPT_FORMAT, check_finite, describe_config, load_weights,
                                      nonfinite_tensors, read_checkpoint, remove_orphan_temps,
                                      save_atomic)
from basicsr.utils.checkpoint_folder import CheckpointFolder, resolve_checkpoint_path
from basicsr.utils.divergence import LossWatch
from basicsr.utils.errors import (EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK, CheckpointError,
                                  ConfigError, DGFusionError, first_line, one_line)
from basicsr.utils.fs import ensure_writable_dir
from basicsr.utils.logger import JsonlWriter, make_tb_writer, setup_logging
from basicsr.utils.run_control import StopRequest, rng_state, seed_everything, set_rng_state
from basicsr.utils.run_lock import LOCK_NAME, RunLock
from basicsr.utils.run_lock import describe as describe_holder
from basicsr.utils.yaml_io import dump_yaml
from basicsr.validation import evaluate_set, format_table, mean_row, write_csv

logger = logging.getLogger('basicsr.train')


def check_resume_point(path: Path, iteration: int, total: int) -> None:
    """Resuming a checkpoint past ``train.total_iter`` is an error, never a negative run."""
    if iteration > total:
        raise ConfigError(f"{path} is at iteration {iteration}, beyond train.total_iter {total}; "
                          f"to train further, raise it (e.g. --set train.total_iter="
                          f"{max(2 * iteration, iteration + 1)})")


def check_resume_weights(path: Path, state: Dict[str, Any]) -> None:
    """A checkpoint whose network or EMA holds NaN or inf is no state to continue from."""
    for key in ('params', 'params_ema'):
        if isinstance(state.get(key), dict):
            check_finite(state[key], f"{path} ({key})")


class Trainer:
    """Owns one training run. Only rank 0 writes files, and it holds the folder's run lock."""

    def __init__(self, loaded: LoadedOptions, auto_resume: bool = False, command: str = '',
                 commit: str = 'unknown') -> None:
        self.opt = opt = loaded.opt
        self.device, self.rank, self.world = du.init_dist(opt['device'])
        self.main = self.rank == 0
        self.exp_dir = Path(opt['path']['experiments_root']) / opt['name']
        self.ckpt_dir = self.exp_dir / 'checkpoints'
        self.checkpoints = CheckpointFolder(self.ckpt_dir)
        self.lock: Optional[RunLock] = None
        if self.main:
            ensure_writable_dir(self.exp_dir, 'experiment folder')
            self.lock = RunLock(self.exp_dir).acquire()
            self._finalizer = weakref.finalize(self, self.lock.release)
            self.stale_lock = self.lock.taken_over
            orphans = remove_orphan_temps(self.ckpt_dir)
        try:
            self._setup(loaded, auto_resume, command, commit, orphans if self.main else [])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Let go of the experiment folder (the run lock); safe to call twice."""
        if self.lock is not None:
            self.lock.release()

    def _setup(self, loaded: LoadedOptions, auto_resume: bool, command: str, commit: str,
               orphans) -> None:
        opt = self.opt
        resume_path = self._find_resume(auto_resume)
        resume_state = self._read_resume(resume_path) if resume_path is not None else None
        if self.main:
            self._prepare_folder(resume_path is not None)
        setup_logging(self.exp_dir / f"train_{opt['name']}.log" if self.main else None)
        if getattr(self, 'archived', None):
            logger.warning('experiment folder existed: moved to %s', self.archived)
        if getattr(self, 'stale_lock', None):
            logger.warning('taking over the stale run lock of %s (%s: that process is gone)',
                           self.exp_dir, describe_holder(self.stale_lock))
        if orphans:
            logger.warning('removed %d temporary checkpoint file(s) left by an interrupted save: %s',
                           len(orphans), ', '.join(p.name for p in orphans))
        for w in loaded.warnings:
            logger.warning(w)
        if self.main:
            (self.exp_dir / 'options_original.yml').write_text(loaded.original_text, encoding='utf-8')
            (self.exp_dir / 'options_resolved.yml').write_text(dump_yaml(opt), encoding='utf-8')
            run = {'command': command, 'git_commit': commit, 'started': datetime.now().isoformat(),
                   'torch': str(torch.__version__), 'device': str(self.device), 'world_size': self.world}
            with open(self.exp_dir / 'runs.yml', 'a', encoding='utf-8') as fh:
                fh.write(dump_yaml([run]))
        seed_everything(opt['manual_seed'] + self.rank)
        if opt.get('deterministic'):
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = MODEL_REGISTRY.get(opt['model_type'])(opt, self.device)
        self._load_pretrained()
        self.start_iter = 0
        self.loss_watch = LossWatch()
        self.last_batch: Optional[Dict[str, Any]] = None  # the resume-point rule judges on it
        self.last_step_loss = math.nan
        if resume_state is not None:
            self._resume(resume_path, resume_state)
            del resume_state
        ds_opt = opt['datasets']['train']
        self.train_set = build_dataset(ds_opt)
        self.bad_pairs: Dict[str, str] = {}  # stem -> reason, over every loader process
        logger.info('train set: %s', self.train_set.summary())
        self.train_loader = build_train_loader(self.train_set, ds_opt, opt['manual_seed'], self.world,
                                               self.rank, self.start_iter)
        self.val_loader = None
        if 'val' in opt['datasets'] and opt['val']['val_freq'] > 0:
            self.val_loader = build_eval_loader(build_dataset(opt['datasets']['val']))
        self.tb = make_tb_writer(self.exp_dir / 'tb_logger') if (
            self.main and opt['logger']['use_tb_logger']) else None
        self.jsonl = JsonlWriter(self.exp_dir / 'train_log.jsonl') if self.main else None
        n_params = sum(p.numel() for p in self.model.net_g.parameters())
        logger.info('network %s: %s parameters; device %s; %d process(es)',
                    opt['network_g'].get('type'), f"{n_params:,}", self.device, self.world)

    # ------------------------------------------------------------------ set-up helpers
    def _find_resume(self, auto_resume: bool) -> Optional[Path]:
        explicit = self.opt['path'].get('resume_state')
        if explicit:
            return Path(explicit)
        if auto_resume and self.ckpt_dir.is_dir():
            return self.checkpoints.newest()  # `latest`, else the newest file
        return None

    def _prepare_folder(self, resuming: bool) -> None:
        """A fresh run moves an earlier run's folder aside; this process holds its lock, so no
        live run is using it."""
        if not resuming and any(p.name != LOCK_NAME for p in self.exp_dir.iterdir()):
            stamp = datetime.now().strftime('%Y%m%d_%H%M%S')
            archived = self.exp_dir.with_name(f"{self.exp_dir.name}_archived_{stamp}")
            self.exp_dir.rename(archived)  # the lock file moves along ...
            self.lock.moved_to(archived)
            self.lock.release()            # ... and is dropped there
            self.lock = RunLock(self.exp_dir).acquire()
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, self.lock.release)
            self.archived = archived
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)

    def _load_pretrained(self) -> None:
        path = self.opt['path'].get('pretrain_network_g')
        if not path:
            return
        path = resolve_checkpoint_path(path) or Path(path)
        load_weights(self.model.net_g, path, key=self.opt['path']['param_key_g'],
                     arch=f"network_g {describe_config(self.opt['network_g'])}")
        if self.model.net_g_ema is not None:
            self.model.net_g_ema.load_state_dict(self.model.net_g.state_dict())
        logger.info('initialised network_g from %s', path)

    def _read_resume(self, path: Path) -> Dict[str, Any]:
        """Read and check a checkpoint to resume, before anything is written."""
        state = read_checkpoint(path)
        if state.get('format') != CKPT_FORMAT:
            raise CheckpointError(f"{path}: not a training checkpoint of this project (no resume state)")
        check_resume_point(path, int(state.get('iter', 0)), self.opt['train']['total_iter'])
        check_resume_weights(path, state)
        return state

    def _resume(self, path: Path, state: Dict[str, Any]) -> None:
        if state['network_g'] != self.opt['network_g']:
            raise ConfigError(f"network_g {self.opt['network_g']} differs from the checkpoint's "
                              f"{state['network_g']} ({path})")
        try:
            self.model.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: cannot restore training state ({exc})") from None
        set_rng_state(state['rng'])
        self.start_iter = int(state['iter'])
        if self.start_iter == self.opt['train']['total_iter']:
            logger.info('the checkpoint is at train.total_iter %d already: nothing to do', self.start_iter)
        logger.info('resumed from %s at iteration %d', path, self.start_iter)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, it: int) -> Optional[Path]:
        """Write ``iter_<it>.pth`` atomically, update ``latest``, prune old periodic files."""
        if not self.main:
            return None
        state = {'format': CKPT_FORMAT, 'network_g': self.opt['network_g'], 'iter': it,
                 'rng': rng_state(), 'config': self.opt, **self.model.state_dict()}
        if state['params_ema'] is None:
            del state['params_ema']
        problem = self.resume_point_problem(state)
        if problem:
            logger.error('not saving iteration %d as a resume point: %s; the last good checkpoint '
                         'is kept', it, problem)
            return None
        path = self.checkpoints.path_for(it)
        save_atomic(state, path)
        self.checkpoints.point_to(path)
        self.checkpoints.prune(self.opt['logger']['keep_checkpoints'])
        logger.info('saved checkpoint %s', path)
        return path

    def resume_point_problem(self, state: Dict[str, Any]) -> Optional[str]:
        """Why ``state`` must not become the resume point, or None (the rule is
        :mod:`basicsr.utils.divergence`: finite weights and EMA, loss not diverged)."""
        for key in ('params', 'params_ema'):
            bad = nonfinite_tensors(state.get(key) or {})
            if bad:
                return f"{len(bad)} {key} tensor(s) hold NaN or inf ({', '.join(bad[:3])})"
        if self.last_batch is None:
            return None
        problem = self.loss_watch.problem(self.model.batch_loss(self.last_batch),
                                          self.last_step_loss)
        if problem is None and self.model.net_g_ema is not None:
            ema_loss = self.model.batch_loss(self.last_batch, use_ema=True)
            if not math.isfinite(ema_loss):
                problem = f"the EMA weights' loss on the last training batch is {ema_loss}"
        return problem

    # ------------------------------------------------------------------ validation
    def validate(self, it: int) -> None:
        if self.val_loader is None or not self.main:
            return
        val = self.opt['val']
        out_dir = self.exp_dir / 'visualization' / f"iter_{it:08d}" if val['save_img'] else None
        names = val['metrics']['names']
        rows = evaluate_set(self.model, self.val_loader, out_dir, names, val['metrics']['convention'],
                            max_images=val['max_images'], show_progress=False,
                            precision=val.get('precision', 'fp32'))
        means = mean_row(rows)
        if names:
            write_csv(self.exp_dir / 'val' / f"metrics_iter_{it:08d}.csv", rows)
            logger.info('validation @%d (%s convention):\n%s', it, val['metrics']['convention'],
                        format_table([means], with_mean=False))
        if self.tb is not None:
            for key, value in means.items():
                if key != 'image':
                    self.tb.add_scalar(f"val/{key}", value, it)
            self._log_images(it)

    def safe_validate(self, it: int) -> None:
        """Validate; a failure (bad image, out of memory) is logged and training goes on."""
        try:
            self.validate(it)
        except (DGFusionError, RuntimeError, OSError) as exc:
            logger.error('validation at iteration %d failed, training continues: %s', it, one_line(exc))
        finally:
            if self.world > 1:
                torch.distributed.barrier()

    def _log_images(self, it: int) -> None:
        """Tensorboard grid of the first validation pair: vis | ir | mask | fused."""
        batch = next(iter(self.val_loader))
        vis, ir = batch['vis'], batch['ir']
        fused = self.model.fuse(vis, ir).cpu()
        from basicsr.data.saliency import saliency_mask
        from basicsr.utils.img_util import tensor2img
        mask = torch.from_numpy(saliency_mask(tensor2img(vis), tensor2img(ir)))[None, None]
        tiles = [t[:1].expand(-1, 3, -1, -1) if t.shape[1] == 1 else t[:1]
                 for t in (vis, ir, mask.to(vis.dtype), fused)]
        grid = make_grid(torch.cat(tiles), nrow=4, padding=0)
        self.tb.add_image('val/vis_ir_mask_fused', grid.clamp(0, 1), it)

    # ------------------------------------------------------------------ loop
    def run(self) -> int:
        """Train to ``train.total_iter``; returns the exit code (0 done, 1 diverged, 130
        stopped by a signal after saving). The run lock is released in every case."""
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> int:
        opt, log_opt = self.opt, self.opt['logger']
        total = opt['train']['total_iter']
        stop = StopRequest()
        stop.install()
        data_iter = iter(self.train_loader)
        it = self.start_iter
        last_saved = it
        t0, t_window, window_start = time.time(), time.time(), it
        bar = tqdm(total=total, initial=it, desc='train', unit='it',
                   disable=not (self.main and sys.stderr.isatty()),
                   dynamic_ncols=True, leave=False)
        logger.info('training from iteration %d to %d', it, total)
        max_minutes = opt['train'].get('max_minutes')
        deadline = None if max_minutes is None else t0 + 60.0 * max_minutes
        out_of_time = False
        try:
            while it < total:
                batch = self._next_batch(data_iter)
                out = self.model.train_step(batch)
                self.last_batch, self.last_step_loss = batch, out['total']
                self.loss_watch.record(out['total'])
                it += 1
                bar.update(1)
                if it % log_opt['print_freq'] == 0 or it == total:
                    speed = (it - window_start) / max(time.time() - t_window, 1e-9)
                    self._log(it, total, out, speed)
                    t_window, window_start = time.time(), it
                if it % log_opt['save_checkpoint_freq'] == 0 or it == total:
                    if self.save_checkpoint(it) is not None or not self.main:
                        last_saved = it
                if opt['val']['val_freq'] > 0 and it % opt['val']['val_freq'] == 0:
                    self.safe_validate(it)
                stopping, out_of_time = self._should_stop(
                    stop, deadline is not None and time.time() >= deadline)
                if stopping:
                    break
        except (TrainingDiverged, UnreadablePairsError) as exc:
            last_saved = self._save_on_stop(it, last_saved)
            logger.error('%s (last checkpoint: %s)', one_line(exc), self._describe_saved(last_saved))
            return EXIT_ITEMS_FAILED
        except KeyboardInterrupt:
            logger.error('interrupted twice: exiting without saving (last checkpoint: %s)',
                         self._describe_saved(last_saved))
            return EXIT_INTERRUPTED
        except Exception as exc:  # any other stop keeps the work done so far, then is reported
            last_saved = self._save_on_stop(it, last_saved)
            logger.error('training stopped at iteration %d by an error (last checkpoint: %s); '
                         'continue with --auto-resume once it is fixed', it,
                         self._describe_saved(last_saved))
            if not isinstance(exc, (DGFusionError, OSError)):
                logger.error('%s: %s', type(exc).__name__, first_line(exc))
            raise
        finally:
            bar.close()
            stop.restore()
            if self.tb is not None:
                self.tb.flush()
        if stop.signal is not None and it < total:  # -1: another process was signalled
            self._save_on_stop(it, last_saved)
            logger.warning('stopped at iteration %d; continue with --auto-resume', it)
            return EXIT_INTERRUPTED  # not 0: a scheduler or retry loop must see the stop
        if out_of_time and it < total:
            self._save_on_stop(it, last_saved)
            logger.info('train.max_minutes (%g) reached at iteration %d; continue with '
                        '--auto-resume', max_minutes, it)
            return EXIT_OK
        logger.info('done: %d iterations in %.1f s', total - self.start_iter, time.time() - t0)
        return EXIT_OK

    def _next_batch(self, data_iter) -> Dict[str, Any]:
        """The next training batch, its skipped pairs noted; past ``max_bad_fraction``
        :class:`UnreadablePairsError`, raised in every process together under DDP (a process
        that stopped alone would leave the others waiting for it forever)."""
        failure: Optional[UnreadablePairsError] = None
        batch: Dict[str, Any] = {}
        try:
            batch = next(data_iter)
            self._note_skipped(batch)
        except UnreadablePairsError as exc:
            failure = exc
        if self.world > 1:
            flag = torch.tensor([0.0 if failure is None else 1.0], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item() and failure is None:
                failure = UnreadablePairsError('another process found more unreadable training '
                                               'pairs than datasets.train.max_bad_fraction allows '
                                               '(named in its output)')
        if failure is not None:
            raise failure
        return batch

    def _note_skipped(self, batch: Dict[str, Any]) -> None:
        """Warn once per training pair the dataset skipped as unreadable (console and log
        file), and stop past ``datasets.train.max_bad_fraction`` of the pairs."""
        for text in batch.pop('skipped', None) or []:
            for line in filter(None, text.split('\n')):
                stem, _, reason = line.partition('\t')
                if stem not in self.bad_pairs:
                    self.bad_pairs[stem] = reason
                    logger.warning('skipped unreadable training pair %s (%d of %d pairs so far): '
                                   '%s', stem, len(self.bad_pairs), len(self.train_set.pairs), reason)
        check_bad_pairs(self.bad_pairs, len(self.train_set.pairs), self.train_set.max_bad_fraction)

    def _save_on_stop(self, it: int, last_saved: int) -> int:
        """Save iteration ``it`` before a stop unless it is saved already; returns the
        iteration of the last checkpoint (a failing save is logged, never raised)."""
        if it == last_saved:
            return last_saved
        try:
            if self.save_checkpoint(it) is not None or not self.main:
                return it
        except Exception as exc:  # e.g. the disk is full: the original error is the story
            logger.error('could not save a checkpoint at iteration %d: %s', it, first_line(exc))
        return last_saved

    @staticmethod
    def _describe_saved(last_saved: int) -> str:
        return 'none' if last_saved == 0 else f"iteration {last_saved}"

    def _should_stop(self, stop, out_of_time: bool = False) -> Tuple[bool, bool]:
        """``(stop now, because of train.max_minutes)``: this process, or under DDP any process,
        received a stop signal or ran out of time."""
        flag = torch.tensor([1.0 if stop.signal is not None else 0.0, float(out_of_time)],
                            device=self.device)
        if self.world > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        signalled, timed_out = bool(flag[0].item()), bool(flag[1].item())
        if signalled and stop.signal is None:
            stop.signal = -1
        return signalled or timed_out, timed_out and not signalled

    def _log(self, it: int, total: int, out: Dict[str, Any], speed: float) -> None:
        # read here, not every step: the count is a device tensor and reading it syncs
        out = {**out, 'nonfinite_features': float(getattr(self.model.net_g, 'last_nonfinite', 0)),
               'skipped_total': float(self.model.nonfinite_total + self.model.scaler_skipped)}
        eta = (total - it) / max(speed, 1e-9)
        losses = ' '.join(f"{k}: {v:.4e}" for k, v in out.items()
                          if k not in ('lr', 'skipped', 'skipped_total', 'nonfinite_features',
                                       'grad_norm'))
        logger.info('iter %d/%d lr %.3e %s | %.2f it/s, eta %s', it, total, out['lr'], losses, speed,
                    time.strftime('%H:%M:%S', time.gmtime(eta)))
        if out.get('nonfinite_features'):
            logger.warning('iter %d: %d non-finite fusion features replaced by 1e-5', it,
                           int(out['nonfinite_features']))
        if self.jsonl is not None:
            self.jsonl.write({'iter': it, **out})
        if self.tb is not None:
            for k, v in out.items():
                self.tb.add_scalar(f"train/{k}", v, it)
