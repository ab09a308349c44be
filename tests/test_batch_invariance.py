"""An example's output does not depend on what else is in its batch (found by the ONNX export work)."""

from __future__ import annotations

import torch

from zoo_tagging.model import TransformerTagger
from zoo_text_classify.model import RNNClassifier, RNNClassifierConfig, ngram_ids


def test_word_triples_of_a_one_word_text_keep_its_length():
    one = torch.tensor([[5]])
    assert ngram_ids(one, 0, 1000, 3).shape == (1, 1)
    assert ngram_ids(one, 0, 1000, 2).shape == (1, 1)


def test_a_one_word_text_scores_the_same_alone_and_in_a_batch():
    torch.manual_seed(0)
    cfg = RNNClassifierConfig(hidden=6, emb_dim=5, bigrams=17, trigrams=17, pooling="last+mean+max")
    model = RNNClassifier(cfg, vocab_size=30, n_classes=3).eval()
    torch.nn.init.normal_(model.bigram.weight)
    torch.nn.init.normal_(model.trigram.weight)
    alone = model(torch.tensor([[5]]), torch.tensor([1]))
    in_batch = model(torch.tensor([[5, 0, 0], [8, 9, 10]]), torch.tensor([1, 3]))
    torch.testing.assert_close(in_batch[0], alone[0])


def test_a_words_character_features_do_not_depend_on_the_longest_word_of_its_batch():
    torch.manual_seed(0)
    model = TransformerTagger(TransformerTagger.Config(d_model=16, n_head=2, char_features=True, char_kernel=3),
                              vocab_size=20, n_tags=4, pad_id=0, char_vocab=30, char_pad_id=0).eval()
    assert torch.count_nonzero(model.chars.emb.weight[0]) == 0  # the padding row starts (and stays) zero
    short = torch.tensor([[3, 4]])  # one word of two characters
    wide = torch.tensor([[3, 4, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10]])  # the same word beside a longer one
    torch.testing.assert_close(model.chars(wide)[0], model.chars(short)[0])
