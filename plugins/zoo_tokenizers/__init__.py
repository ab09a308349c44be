"""Built-in tokenizers. Registration is by dotted path: nothing heavy is imported here."""

from zoo import hookimpl


@hookimpl
def zoo_register_tokenizers(register):
    register("digits", "zoo_tokenizers.digits:DigitTokenizer",
             summary="one id per decimal digit; whitespace ignored")
