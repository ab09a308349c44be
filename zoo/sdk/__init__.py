"""What plugins implement and use: the interfaces, tokenizers, vocabularies, metrics, tensor helpers, word vectors, files."""
