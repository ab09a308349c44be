"""Plugin ``track``: zoo's experiment trackers, ``tensorboard`` and ``mlflow`` (``train.loggers``).

Light at import: the loggers load when a run names them, their packages (the extras
``zoo[tensorboard]`` and ``zoo[mlflow]``) only when a run starts.
"""

from __future__ import annotations

from zoo import hookimpl

__version__ = "0.1.0"


@hookimpl
def zoo_register_loggers(register):
    register("tensorboard", "zoo_track.tensorboard:TensorBoardLogger",
             summary="TensorBoard event files in RUN/tensorboard (pip install 'zoo[tensorboard]')")
    register("mlflow", "zoo_track.mlflow_logger:MLflowLogger",
             summary="an MLflow run at MLFLOW_TRACKING_URI (pip install 'zoo[mlflow]')")
