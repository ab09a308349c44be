"""The prepared-data cache: what a task makes of a dataset split, written once and reused.

- :mod:`zoo.prepared.store`: cache entries on disk (atomic, locked, verified), listing and pruning.
- :mod:`zoo.prepared.fingerprint`: the key of an entry (file contents, configs, tokenizer state, versions).
- :mod:`zoo.prepared.stream`: text read in chunks, with a progress bar in bytes, for streaming preparation.
- :mod:`zoo.prepared.splits`: how a run's splits are prepared through the cache (used by :func:`zoo.build.build`).

A task opts in by implementing :meth:`zoo.Task.prepare_split` and :meth:`zoo.Task.load_prepared`.
"""

from .store import ArrayWriter, Entry, PreparedCache, cache_root
from .stream import TextStream, read_chunks, split_text, whitespace_cuts

__all__ = ["ArrayWriter", "Entry", "PreparedCache", "TextStream", "cache_root", "read_chunks", "split_text",
           "whitespace_cuts"]
