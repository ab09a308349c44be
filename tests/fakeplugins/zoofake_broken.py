"""A plugin whose import fails (its dependency is missing, say)."""

raise RuntimeError("boom: zoofake_broken cannot be imported")
