"""Fetch RoadScene, TNO and VIFB into datasets/.

Logic and options: ``basicsr/data/download.py``.
"""
import sys

from basicsr.data.download import main

if __name__ == '__main__':
    sys.exit(main())
