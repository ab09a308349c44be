"""A plugin with a misspelled hook name: it must be reported, not silently ignored."""

from zoo import hookimpl


@hookimpl
def zoo_register_modelz(register):
    register("typo-model", "zoofake_typo:Nothing")
