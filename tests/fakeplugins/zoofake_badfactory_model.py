"""The module of a factory that fails on import (a dependency missing, say)."""

raise ImportError("zoofake_badfactory_model needs the package 'notinstalled'")
