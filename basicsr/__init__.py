"""DGFusion: discrepancy-guided visible-thermal image fusion (BasicSR-style framework)."""
__version__ = '1.0.0'
