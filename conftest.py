"""Root conftest: pytest puts its folder, this checkout, first on the import path (prepend import
mode), so tests import this checkout's ``basicsr``. The processes the tests start
(``python scripts/x.py``, torchrun workers) get the same package through ``PYTHONPATH``."""
import os

from basicsr.utils.cli import package_env

os.environ['PYTHONPATH'] = package_env()['PYTHONPATH']
