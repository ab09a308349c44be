"""The Dataset interface: named splits of examples, read from the data dir, a user's files, or made up."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from zoo.config import EmptyConfig
from zoo.errors import ZooError
from zoo.sdk.files import Source, local_path, locate

Example = Mapping[str, Any]


class Dataset(ABC):
    """Named splits of examples (dicts). Reads files under the data dir, or makes them."""

    Config: ClassVar[type] = EmptyConfig
    folder: ClassVar[str] = ""  # sub-folder of the data dir holding this dataset's files
    sources: ClassVar[tuple[Source, ...]] = ()
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def __init__(self, config: Any = None, data_dir: Path | None = None):
        self.config = config if config is not None else self.Config()
        self.data_dir = data_dir

    @abstractmethod
    def load(self, split: str) -> Sequence[Example]:
        """The examples of ``split``; raises :class:`zoo.DataError` naming file and line on bad input."""

    def file(self, filename: str) -> Path:
        """The local path of one of :attr:`sources`, checked against its sha256."""
        matches = [s for s in self.sources if s.filename == filename]
        if not matches:
            raise ZooError(f"{type(self).__name__} declares no source named '{filename}'")
        return locate(self.folder, matches[0], self.data_dir)

    def input_files(self) -> list[Path] | None:
        """Every file the dataset reads, for the key of the prepared-data cache (:mod:`zoo.build.prepare`);
        None: unknown, so nothing it gives is cached. Default: the files of :attr:`sources`. A dataset of a
        user's own files returns :meth:`user_files` of the config keys naming them."""
        return [self.file(s.filename) for s in self.sources] if self.sources else None

    def user_files(self, *keys: str) -> list[Path]:
        """The files the config ``keys`` name (those set; e.g. ``"train_file", "test_file"``), found as
        :func:`zoo.local_path` finds them; a missing one is a :class:`zoo.DataError` naming its key."""
        names = [(key, getattr(self.config, key)) for key in keys]
        return [local_path(name, self.data_dir, key=f"dataset.{key}", kind="file") for key, name in names if name]

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ZooError(f"{type(self).__name__} has no split '{split}'; splits: {', '.join(self.splits)}")
