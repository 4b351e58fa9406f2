"""Puts this checkout first on sys.path so tests import its ``basicsr`` package."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
