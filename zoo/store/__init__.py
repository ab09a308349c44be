"""What zoo writes and reads back: atomic files, artifacts, checkpoints, run folders, model cards."""
