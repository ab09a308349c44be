"""Text corpora for language modelling: tiny-shakespeare and a user's own documents.

Every example is ``{"text": str}``; a language-modelling task concatenates them.
Registration is by dotted path: nothing is read or imported here.
"""

from zoo import hookimpl


@hookimpl
def zoo_register_datasets(register):
    register("tinyshakespeare", "zoo_text.datasets:TinyShakespeare",
             summary="tiny-shakespeare (char-rnn / nanoGPT), 1.1M characters; first 90% train, last 10% val")
    register("text", "zoo_text.datasets:TextFiles",
             summary="your own documents (.txt .md .html .pdf .docx; globs, folders); val: val_files or each file's end")
