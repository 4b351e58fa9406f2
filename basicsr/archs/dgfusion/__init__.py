"""DGFusion, one network under the network contract (``basicsr.archs.contract``).

* ``module`` -- the ``nn.Module`` (training forward; lean inference without autograd);
* ``blocks`` -- its named blocks and the wiring of its spectra, shared by every evaluation;
* ``lean`` -- the lean inference forward;
* ``reference`` -- the plain function with a pluggable spectral backend (``torch.fft``: the
  float64 reference); ``export`` -- the same function with DFT-basis matrices, for ONNX;
* ``published`` -- the published checkpoint layout and width inference;
* ``spectral`` -- spectral helpers; ``memory`` -- the memory model of the memory guard.

Importing this package registers ``DGFusion`` with its spec.
"""
from basicsr.archs.contract import NetworkSpec, register_network
from basicsr.archs.dgfusion.export import ExportableDGFusion
from basicsr.archs.dgfusion.memory import network_bytes_per_pixel
from basicsr.archs.dgfusion.module import DGFusion
from basicsr.archs.dgfusion.published import PUBLISHED_ADAPTER
from basicsr.archs.dgfusion.reference import reference_forward
from basicsr.archs.dgfusion.spectral import prepare_compile

register_network(DGFusion, NetworkSpec(state_adapter=PUBLISHED_ADAPTER,
                                       bytes_per_pixel=network_bytes_per_pixel,
                                       exportable=ExportableDGFusion,
                                       prepare_compile=prepare_compile,
                                       reference_forward=reference_forward))
