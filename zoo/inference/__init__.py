"""Trained models at work: loading an artifact and predicting on raw inputs."""
