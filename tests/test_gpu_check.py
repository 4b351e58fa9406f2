"""scripts/gpu_check.py runs its whole table on tiny sizes (CPU smoke test of the GPU check)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / 'g.json'
    res = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'gpu_check.py'), '--quick',
                          '--device', 'cpu', '--channels', '2', '--json', str(out)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    figures = json.loads(out.read_text())
    assert figures['accuracy_ok'] is True
    assert {'16x20_b1_fp32', '16x20_b2_bf16'} <= set(figures['speed'])
    agreement = figures['speed']['16x20_bf16_vs_fp32']  # fuse(precision='bf16') vs fp32, 8-bit
    assert agreement['psnr_db'] > 30 and 0 <= agreement['max_diff'] <= 255
    assert '| fuse 16x20 bf16 vs fp32 (8-bit) | PSNR ' in res.stdout
    assert '| accuracy 9x11 | fp32 max abs vs float64' in res.stdout


def test_gpu_check_refuses_cpu_without_quick(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'gpu_check.py'), '--device', 'cpu',
                          '--json', str(tmp_path / 'g.json')], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 2 and res.stderr.startswith('error:')


def test_gpu_check_skips_bf16_rows_where_bf16_is_not_native(monkeypatch):
    import torch

    from basicsr.archs.dgfusion.module import DGFusion
    from basicsr.models import precision
    from basicsr.tools import gpu_check
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: False)
    net = DGFusion(2).train(False)
    rows, figures = gpu_check.check_speed(net, torch.device('cpu'), [(8, 12)], [1])
    assert rows[0][0] == 'bf16 rows skipped' and 'no native bfloat16' in rows[0][1]
    assert set(figures) == {'8x12_b1_fp32'}
