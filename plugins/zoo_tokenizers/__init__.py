"""Built-in tokenizers. Registration is by dotted path: nothing heavy is imported here."""

from zoo import hookimpl


@hookimpl
def zoo_register_tokenizers(register):
    register("digits", "zoo_tokenizers.digits:DigitTokenizer",
             summary="one id per decimal digit; whitespace ignored")
    register("char", "zoo_tokenizers.char:CharTokenizer",
             summary="one id per character seen in training; unseen characters -> <unk>")
    register("bpe", "zoo_tokenizers.bpe:BPETokenizer",
             summary="byte-level BPE (HuggingFace tokenizers); any UTF-8 text, exact round trip")
