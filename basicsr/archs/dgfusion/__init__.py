"""DGFusion: the network (``module``), its lean inference path (``lean``), the float64
reference and export evaluations (``reference``, ``export``), the published checkpoint layout
(``published``) and the spectral helpers they share (``spectral``)."""
from basicsr.archs.dgfusion import module  # noqa: F401  (registers DGFusion)
from basicsr.archs.dgfusion import published  # noqa: F401  (registers DGFusion's published layout)
