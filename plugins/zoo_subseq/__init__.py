"""The synthetic subsequence-copy dataset (reference system 3)."""

from zoo import hookimpl


@hookimpl
def zoo_register_datasets(register):
    register("subseq", "zoo_subseq.dataset:SubseqDataset",
             summary="copy the subsequence named by (start, length) out of 8 random digits; synthetic")
