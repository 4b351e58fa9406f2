"""DGFusion: discrepancy-guided visible-thermal image fusion (BasicSR-style framework)."""
__version__ = '1.0.0'
__dgfusion__ = True  # marker: tells this package apart from PyPI's BasicSR, which shares the name
