"""Word vectors: gensim training, GloVe / word2vec reading, layout by token id."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.sdk.embeddings import embedding_matrix, load_vectors, save_vectors, train_vectors


def test_train_vectors_is_deterministic_and_learns_cooccurrence():
    sents = [["open", "the", "file"], ["close", "the", "file"], ["open", "a", "socket"]] * 50
    a = train_vectors(sents, 16, epochs=5, seed=1)
    b = train_vectors(sents, 16, epochs=5, seed=1)
    assert a.dim == 16 and set(a.words) == {"open", "the", "file", "close", "a", "socket"}
    assert torch.equal(a.matrix, b.matrix)


def test_glove_and_word2vec_text_round_trip(tmp_path):
    glove = tmp_path / "g.txt"
    glove.write_text("the 0.1 0.2 0.3\ncat -1 0 1\n")
    v = load_vectors(glove)
    assert v.words == ["the", "cat"] and v.dim == 3
    save_vectors(v, tmp_path / "w2v.txt")
    assert (tmp_path / "w2v.txt").read_text().splitlines()[0] == "2 3"
    w = load_vectors(tmp_path / "w2v.txt")
    assert w.words == v.words and torch.allclose(w.matrix, v.matrix)


def test_bad_vectors_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2\ncat 0.3\n")
    with pytest.raises(zoo.DataError, match=r"bad.txt:2: expected a word and 2 numbers"):
        load_vectors(bad)
    with pytest.raises(zoo.DataError, match="no such vectors file"):
        load_vectors(tmp_path / "missing.txt")


def test_embedding_matrix_places_rows_and_checks_dimension(tmp_path):
    glove = tmp_path / "g.txt"
    glove.write_text("the 1 2 3 4\ncat 5 6 7 8\n")
    v = load_vectors(glove)
    m, found = embedding_matrix(["<pad>", "<unk>", "Cat", "the"], v, 4)
    assert found == 2
    assert torch.equal(m[0], torch.zeros(4))
    assert torch.equal(m[2], torch.tensor([5.0, 6, 7, 8])) and torch.equal(m[3], torch.tensor([1.0, 2, 3, 4]))
    with pytest.raises(zoo.ConfigError, match="4 dimensions but the embedding has 2"):
        embedding_matrix(["the"], v, 2)
    small, _ = embedding_matrix(["the", "cat"], v, 2, project=True, pad_index=None)
    big, _ = embedding_matrix(["the", "cat"], v, 6, project=True, pad_index=None)
    assert small.shape == (2, 2) and big.shape == (2, 6) and torch.equal(big[1, :4], torch.tensor([5.0, 6, 7, 8]))


def test_shared_glove_file_reads(data_dir_or_skip):
    v = load_vectors(data_dir_or_skip / "glove" / "glove.6B.50d.20k.txt", limit=1000)
    assert v.dim == 50 and len(v.words) == 1000 and v.words[0] == "the"
