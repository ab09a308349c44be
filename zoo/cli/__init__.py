"""The ``zoo`` command line.

One module per core command (``zoo.cli.train`` is ``zoo train``, ...); ``zoo serve`` and ``zoo import``
come from :mod:`zoo.serve` and :mod:`zoo.interop`. :mod:`zoo.cli.common` is the one place that turns
ZooErrors into exit codes; :mod:`zoo.cli.main` builds the group.
"""

from zoo.cli.main import build_cli, main

__all__ = ["build_cli", "main"]
