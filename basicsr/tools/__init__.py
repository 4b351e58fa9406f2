"""The logic of every command. Each command module's ``main(argv) -> exit code`` is what
``scripts/<name>.py`` runs and, for the main ones, a console entry point installed by
``setup.py`` (``dgfusion-fuse``, ...); helper modules (``fuse_plan``) have no ``main``.
Exit codes: 0 done, 1 some items failed (each named), 2 bad arguments or setup, 130 interrupted.
"""
