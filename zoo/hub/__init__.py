"""Sharing trained models: fetching them by URL into a cache, publishing them to an index, packaging them as wheels.

- :mod:`zoo.store.fetch`: ``https://``, ``http://``, ``file://`` and ``s3://`` URLs downloaded into
  ``$ZOO_CACHE_DIR/models`` (resumed, verified, offline with ``ZOO_OFFLINE=1``).
- :mod:`zoo.hub.index`: ``zoo publish`` / ``zoo pull`` / ``zoo list --index`` over an ``index.json``.
- :mod:`zoo.hub.package`: ``zoo package``, a pip-installable wheel holding one model.
- :mod:`zoo.store.remote`: what a MODEL argument that is not a local file means (URL, packaged model,
  an entry's published weights).

Light at import: nothing here imports torch, fsspec or a network library until it is used.
"""
