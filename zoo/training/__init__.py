"""Training and evaluating: the run behind ``zoo train``, the loop, optimizers, the evaluation loop."""
