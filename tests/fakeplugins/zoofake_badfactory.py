"""A plugin that imports fine but registers factories that do not: a module that raises, a missing module,
and an object that is not a model."""

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("raising-model", "zoofake_badfactory_model:RaisingModel")
    register("missing-model", "zoofake_nowhere_at_all:Model")
    register("not-a-model", "zoofake_badfactory:NOT_A_MODEL")


NOT_A_MODEL = 42
