"""FusionModel: one optimisation step, EMA, and the steps that must not update anything."""
import copy

import pytest
import torch

from basicsr.models.fusion_model import FusionModel


def _opt(ema_decay=0.9, compile=False):
    return {'network_g': {'type': 'DGFusion', 'channels': 2},
            'train': {'ema_decay': ema_decay, 'precision': 'fp32', 'grad_clip': None,
                      'compile': compile, 'compile_mode': 'default',
                      'max_nonfinite_steps': 3, 'scheduler': None,
                      'optim_g': {'type': 'SGD', 'lr': 0.1},
                      'losses': [{'type': 'MaxIntensityLoss', 'loss_weight': 1.0}]}}


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'vis': torch.rand(2, 3, 12, 10, generator=g), 'ir': torch.rand(2, 1, 12, 10, generator=g)}


def _params(net):
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def test_train_step_updates_network_and_ema():
    torch.manual_seed(0)
    model = FusionModel(_opt(), torch.device('cpu'))
    net0, ema0 = _params(model.net_g), _params(model.net_g_ema)
    out = model.train_step(_batch())
    assert out['skipped'] == 0.0 and torch.isfinite(torch.tensor(out['total']))
    net1, ema1 = _params(model.net_g), _params(model.net_g_ema)
    for name in net0:
        # ema = 0.9 * ema + 0.1 * net (after the step)
        torch.testing.assert_close(ema1[name], 0.9 * ema0[name] + 0.1 * net1[name])
    assert any((net1[n] - net0[n]).abs().max() > 0 for n in net0)


def test_amp_overflow_step_is_skipped_and_leaves_ema_alone():
    """Under AMP the gradient scaler skips a step whose gradients overflow: the step is
    reported as skipped, counted, and neither the network nor its EMA moves."""
    torch.manual_seed(1)
    model = FusionModel(_opt(), torch.device('cpu'))
    model.use_scaler = True  # the CPU scaler behaves as the CUDA one for this check
    model.scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 4)
    assert model.train_step(_batch(5))['skipped'] == 0.0  # now the EMA differs from the net
    hook = model.net_g.reconstruction[2].bias.register_hook(lambda g: g * float('inf'))
    net0, ema0 = _params(model.net_g), _params(model.net_g_ema)
    assert any(not torch.equal(net0[n], ema0[n]) for n in net0)
    out = model.train_step(_batch())
    assert out['skipped'] == 1.0 and model.scaler_skipped == 1
    assert model.nonfinite_in_a_row == 0  # a scaler skip is not divergence
    assert model.scaler.get_scale() < 2.0 ** 4
    for name, p in _params(model.net_g).items():
        assert torch.equal(p, net0[name]), name
    for name, p in _params(model.net_g_ema).items():
        assert torch.equal(p, ema0[name]), name
    hook.remove()
    out = model.train_step(_batch(1))
    assert out['skipped'] == 0.0 and model.scaler_skipped == 1


def test_nonfinite_loss_is_skipped_then_stops_training():
    from basicsr.utils.errors import DGFusionError
    torch.manual_seed(2)
    model = FusionModel(_opt(), torch.device('cpu'))
    batch = _batch()
    batch['ir'][0, 0, 0, 0] = float('nan')
    net0 = _params(model.net_g)
    assert model.train_step(batch)['skipped'] == 1.0
    assert all(torch.equal(p, net0[n]) for n, p in _params(model.net_g).items())
    model.train_step(batch)
    with pytest.raises(DGFusionError, match='non-finite losses in a row'):
        model.train_step(batch)


def test_state_dict_round_trip():
    torch.manual_seed(3)
    model = FusionModel(_opt(), torch.device('cpu'))
    model.train_step(_batch())
    state = copy.deepcopy(model.state_dict())
    other = FusionModel(_opt(), torch.device('cpu'))
    other.load_state_dict(state)
    for (n, p), (_, q) in zip(model.net_g.named_parameters(), other.net_g.named_parameters()):
        assert torch.equal(p, q), n
    for (n, p), (_, q) in zip(model.net_g_ema.named_parameters(), other.net_g_ema.named_parameters()):
        assert torch.equal(p, q), n
    assert other.optimizer.state_dict()['param_groups'] == model.optimizer.state_dict()['param_groups']


def test_inference_only_model_state_dict():
    """is_train=False builds no optimiser: its state is the network alone, and it loads the
    EMA weights of a training model's state."""
    torch.manual_seed(4)
    trained = FusionModel(_opt(), torch.device('cpu'))
    trained.train_step(_batch())
    plain = FusionModel(_opt(), torch.device('cpu'), is_train=False)
    assert trained.is_train and not plain.is_train
    state = plain.state_dict()
    assert set(state) == {'params', 'params_ema'} and state['params_ema'] is None
    assert state['params'].keys() == trained.net_g.state_dict().keys()
    assert not plain.net_g.training
    plain.load_state_dict(trained.state_dict())
    for name, p in plain.net_g.named_parameters():
        assert torch.equal(p, dict(trained.net_g_ema.named_parameters())[name]), name
    assert any(not torch.equal(p, dict(trained.net_g.named_parameters())[n])
               for n, p in plain.net_g.named_parameters())  # the EMA, not the raw weights


@pytest.mark.slow  # compiling takes about a minute on two cores
def test_compiled_training_step_matches_eager():
    """train.compile: the same loss and parameter gradients as the eager step (C=2, batch 2,
    16x16), while net_g itself stays uncompiled (same state_dict keys, lean inference)."""
    batch = _batch_of_size(16, 16)
    models = []
    for compile in (False, True):
        torch.manual_seed(5)
        model = FusionModel(_opt(compile=compile), torch.device('cpu'))
        models.append((model, model.train_step(batch)))
    (eager, out_e), (compiled, out_c) = models
    assert compiled.train_net is not compiled.net_g
    assert out_c['skipped'] == 0.0
    assert out_c['total'] == pytest.approx(out_e['total'], rel=1e-5, abs=0)
    grads_e = {n: p.grad for n, p in eager.net_g.named_parameters()}
    grads_c = {n: p.grad for n, p in compiled.net_g.named_parameters()}
    assert grads_c.keys() == grads_e.keys()
    largest = max(g.abs().max() for g in grads_e.values())
    assert largest > 0
    for name, g in grads_e.items():
        assert (grads_c[name] - g).abs().max() <= 1e-5 * largest, name
    assert list(compiled.net_g.state_dict()) == list(eager.net_g.state_dict())
    assert int(compiled.net_g.last_nonfinite) == 0  # the forward's side effect reached net_g
    vis, ir = batch['vis'], batch['ir']
    torch.testing.assert_close(compiled.fuse(vis, ir), eager.fuse(vis, ir), rtol=0, atol=1e-5)
    # a second step runs the compiled code (no recompilation error) and matches too
    batch2 = _batch_of_size(16, 16, seed=9)
    assert compiled.train_step(batch2)['total'] == pytest.approx(eager.train_step(batch2)['total'],
                                                                 rel=1e-4, abs=0)


def _batch_of_size(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'vis': torch.rand(2, 3, h, w, generator=g), 'ir': torch.rand(2, 1, h, w, generator=g)}


def test_compile_mode_must_be_known():
    from basicsr.utils.errors import ConfigError
    opt = _opt(compile=True)
    opt['train']['compile_mode'] = 'fast'
    with pytest.raises(ConfigError, match='train.compile_mode'):
        FusionModel(opt, torch.device('cpu'))
