"""Option files: read once, fill defaults, apply ``--set`` overrides, validate everything.

The layout follows BasicSR (``name``, ``datasets``, ``network_g``, ``path``, ``train``, ``val``,
``logger``). Sections that select a registered class with ``type:`` are checked against that
class's constructor signature; the fixed sections against
:data:`basicsr.options.schema.TRAIN_SCHEMA`. Every problem in a file is collected and reported
in one :class:`~basicsr.utils.errors.ConfigError`, one line each, with the dotted key path and a
suggestion.

One job per module: ``fields`` (ranges, fixed fields, the problem collector), ``registered``
(``type:`` sections against constructor signatures), ``schema`` (the option layout), ``paths``
(run name, checkpoints, output folders), ``datasets``, ``training`` (the section checks),
``loading`` (:func:`load_options`, ``--set``, ``--dry-run``).

This package sits above the others: it imports them so that their registries are filled, and
they never import it.
"""
from basicsr.options.loading import LoadedOptions, load_options, print_dry_run, written_network_g

__all__ = ['LoadedOptions', 'load_options', 'print_dry_run', 'written_network_g']
