"""The conformance kit's contract tests (:mod:`zoo.kit.contracts`), collected by the pytest plugin :mod:`zoo.testing`."""
