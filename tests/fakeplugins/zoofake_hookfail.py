"""A plugin whose model hook raises part-way through (a bug in the plugin's own code)."""

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("half-model", "zoofake_hookfail:Nothing")
    sizes = {"small": 1}
    register("other-model", "zoofake_hookfail:Nothing", summary=f"size {sizes['large']}")  # KeyError here
