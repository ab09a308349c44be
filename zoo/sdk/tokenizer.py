"""The Tokenizer interface (text <-> ids), and VocabTokenizer for a vocabulary of string tokens.

Re-exported by ``zoo``; this module does not import torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

from zoo.config import EmptyConfig
from zoo.errors import ZooError


class Tokenizer(ABC):
    """Text <-> ids. Fitted on the training split; its state travels in the artifact as JSON."""

    Config: ClassVar[type] = EmptyConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def fit(self, texts: Iterable[str]) -> None:
        """Learn the vocabulary from training texts."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, without bos/eos (the task adds those)."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids are skipped."""

    def encode_batch(self, texts: Sequence[str]) -> list[Sequence[int]]:
        """:meth:`encode` of each text (a tokenizer may do it faster, e.g. on all cores or vectorised)."""
        return [self.encode(t) for t in texts]

    def encode_stream(self, texts: Iterable[str], batch: int = 8) -> Iterator[Sequence[int]]:
        """:meth:`encode_batch` of a stream of texts (e.g. a corpus in chunks), ``batch`` at a time, the ids of
        each text in order. A tokenizer may spread a long stream over worker processes."""
        group: list[str] = []
        for text in texts:
            group.append(text)
            if len(group) == batch:
                yield from self.encode_batch(group)
                group = []
        if group:
            yield from self.encode_batch(group)

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def pad_id(self) -> int: ...

    @property
    @abstractmethod
    def unk_id(self) -> int: ...

    @property
    @abstractmethod
    def bos_id(self) -> int: ...

    @property
    @abstractmethod
    def eos_id(self) -> int: ...

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state: with the config, enough to rebuild the fitted tokenizer."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None: ...


class VocabTokenizer(Tokenizer):
    """A tokenizer over a list of string tokens; specials first: <pad> <unk> <bos> <eos>.

    Subclasses implement :meth:`split` (text -> tokens), :meth:`join` and :meth:`fit`
    (which calls :meth:`set_vocab`).
    """

    SPECIALS: ClassVar[tuple[str, ...]] = ("<pad>", "<unk>", "<bos>", "<eos>")

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.itos: list[str] = list(self.SPECIALS)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @abstractmethod
    def split(self, text: str) -> list[str]: ...

    @abstractmethod
    def join(self, tokens: list[str]) -> str: ...

    def set_vocab(self, tokens: Iterable[str]) -> None:
        self.itos = list(self.SPECIALS) + [t for t in tokens if t not in self.SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def encode(self, text: str) -> list[int]:
        unk, stoi = self.unk_id, self.stoi
        return [stoi.get(t, unk) for t in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        n = len(self.SPECIALS)
        return self.join([self.itos[i] for i in ids if n <= i < len(self.itos)])

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    pad_id = property(lambda self: 0)
    unk_id = property(lambda self: 1)
    bos_id = property(lambda self: 2)
    eos_id = property(lambda self: 3)

    def get_state(self) -> dict[str, Any]:
        return {"itos": self.itos}

    def set_state(self, state: dict[str, Any]) -> None:
        itos = state.get("itos")
        if not isinstance(itos, list) or list(itos[: len(self.SPECIALS)]) != list(self.SPECIALS):
            raise ZooError(f"{type(self).__name__}: tokenizer state has no valid 'itos' list")
        bad = next((i for i, t in enumerate(itos) if not isinstance(t, str)), None)
        if bad is not None:
            raise ZooError(f"{type(self).__name__}: tokenizer state 'itos' item {bad} is not a string")
        if len(set(itos)) != len(itos):
            raise ZooError(f"{type(self).__name__}: tokenizer state 'itos' lists a token twice")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
