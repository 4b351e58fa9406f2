"""The logic of every command: each module's ``main(argv) -> exit code`` is both the console
entry point installed by ``setup.py`` (``dgfusion-fuse``, ...) and what ``scripts/<name>.py``
runs. Exit codes: 0 done, 1 some items failed (each named), 2 bad arguments or setup,
130 interrupted."""
