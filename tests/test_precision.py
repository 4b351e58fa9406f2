"""Training precision (train.precision: fp32 | bf16 | fp16): which layers run in which dtype,
the option's checks and a bf16 training run end to end."""
from __future__ import annotations

import collections

import pytest
import torch

from basicsr.archs.dgfusion.module import ChannelLayerNorm, DGFusion
from basicsr.options import load_options
from basicsr.models import precision as precision_mod
from basicsr.models.precision import autocast, precision_problem
from basicsr.train import main as train_main
from basicsr.utils.errors import ConfigError
from tests.conftest import train_options

CPU = torch.device('cpu')
# DGFusion's 38 convolutions: encoders 2 x 3, gate 2 and reconstruction 2 on spatial features;
# joint amplitude/phase 2 x 2, projections 2 x 2, refinements 4 x 2 and the attention
# projections 2 blocks x 3 x 2 (16 + 12 = 28) inside the frequency-domain blocks
SPATIAL_CONVS = 6 + 2 + 2


def _conv_dtypes(net: torch.nn.Module, run) -> collections.Counter:
    seen: collections.Counter = collections.Counter()
    hooks = [m.register_forward_hook(lambda m, a, o: seen.update([o.dtype]))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def _pair(c: int = 3, h: int = 14, w: int = 11, seed: int = 0):
    torch.manual_seed(seed)
    net = DGFusion(c).train()
    g = torch.Generator().manual_seed(seed + 1)
    return net, torch.rand(2, 1, h, w, generator=g), torch.rand(2, 1, h, w, generator=g)


def test_bf16_runs_every_convolution_in_bf16_and_keeps_spectra_float32():
    net, vis_y, ir = _pair()
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert n_convs == 38
    norm_inputs = []
    hooks = [m.register_forward_hook(lambda m, a, o: norm_inputs.append((a[0].dtype, o.dtype)))
             for m in net.modules() if isinstance(m, ChannelLayerNorm)]
    with autocast('bf16', CPU):
        seen = _conv_dtypes(net, lambda: net(vis_y, ir))
    for h in hooks:
        h.remove()
    assert seen == {torch.bfloat16: 38}
    # the six layer norms read inverse FFTs: float32 in, float32 statistics and output
    assert norm_inputs == [(torch.float32, torch.float32)] * 6


def test_fp16_keeps_the_frequency_blocks_in_float32():
    """Under float16 autocast only the spatial convolutions (encoders, gate, reconstruction)
    drop to float16; spectra would overflow it."""
    net, vis_y, ir = _pair()
    with torch.autocast('cpu', dtype=torch.float16):
        seen = _conv_dtypes(net, lambda: net(vis_y, ir))
    assert seen == {torch.float16: SPATIAL_CONVS, torch.float32: 38 - SPATIAL_CONVS}


def test_bf16_forward_and_gradients_follow_float32():
    net, vis_y, ir = _pair(c=2, h=16, w=13)
    ref = net(vis_y, ir)
    ref.square().mean().backward()
    grads32 = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    with autocast('bf16', CPU):
        out = net(vis_y, ir)
    out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16
    # bfloat16 keeps 8 significant bits (relative step 2^-8 ~ 0.4%): after ~20 layers the
    # output stays within a few percent of its range, far from the float32 values if wrong
    scale = ref.abs().max().item()
    assert (out.float() - ref).abs().max().item() <= 0.1 * scale
    assert (out.float() - ref).abs().max().item() > 0  # it did compute in bfloat16
    for name, p in net.named_parameters():
        assert p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name
    g32 = torch.cat([g.flatten() for g in grads32.values()])
    g16 = torch.cat([p.grad.flatten() for p in net.parameters()])
    cosine = torch.nn.functional.cosine_similarity(g32, g16, dim=0).item()
    assert cosine > 0.95


def test_precision_problems_are_one_line(monkeypatch):
    assert precision_problem('fp32', CPU) is None
    assert 'fp16 needs a CUDA device' in precision_problem('fp16', CPU)
    assert "'fp8' is not one of fp32, bf16, fp16" in precision_problem('fp8', CPU)
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: False)
    msg = precision_problem('bf16', CPU)
    assert msg.startswith('train.precision: bf16 is not supported here') and '\n' not in msg
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: True)
    assert precision_problem('bf16', CPU) is None


def _opt_file(tmp_path, tiny_data, extra: str, name: str = 'opt.yml'):
    text = train_options(tmp_path, tiny_data, total_iter=2, save_freq=2)
    path = tmp_path / name
    path.write_text(text.replace('  ema_decay:', f'  {extra}\n  ema_decay:'))
    return path


def test_option_checks(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: False)
    with pytest.raises(ConfigError, match=r'train\.precision: bf16 is not supported here'):
        load_options(_opt_file(tmp_path, tiny_data, 'precision: bf16'))
    # the old switch means fp16, which a CPU cannot run
    with pytest.raises(ConfigError, match=r'train\.precision: fp16 needs a CUDA device'):
        load_options(_opt_file(tmp_path, tiny_data, 'use_amp: true'))
    with pytest.raises(ConfigError, match=r'train\.use_amp: true \(fp16\) conflicts with '
                                          r'train\.precision: bf16'):
        load_options(_opt_file(tmp_path, tiny_data, 'use_amp: true\n  precision: bf16'))
    with pytest.raises(ConfigError, match=r"train\.precision: 'half' is not one of"):
        load_options(_opt_file(tmp_path, tiny_data, 'precision: half'))


def test_unsupported_bf16_exits_2_with_one_line(tmp_path, tiny_data, monkeypatch, capsys):
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: False)
    assert train_main(['-opt', str(_opt_file(tmp_path, tiny_data, 'precision: bf16'))]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and 'bf16 is not supported here' in err[0]
    assert not (tmp_path / 'experiments' / 'tiny' / 'checkpoints').exists()


def test_bf16_training_run_keeps_float32_state(tmp_path, tiny_data, monkeypatch):
    """A bf16 run on a CPU taken as bf16-capable (oneDNN emulates it where it is not): losses
    finite, checkpoint tensors float32, the optimiser state float32."""
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: True)
    assert train_main(['-opt', str(_opt_file(tmp_path, tiny_data, 'precision: bf16'))]) == 0
    exp = tmp_path / 'experiments' / 'tiny'
    state = torch.load(exp / 'checkpoints' / 'iter_00000002.pth', map_location='cpu',
                       weights_only=True)
    for key in ('params', 'params_ema'):
        assert all(t.dtype == torch.float32 for t in state[key].values()), key
    assert state['config']['train']['precision'] == 'bf16'
    moments = [t for s in state['optimizer']['state'].values() for t in s.values()
               if torch.is_tensor(t) and t.dim() > 0]
    assert moments and all(t.dtype == torch.float32 for t in moments)
