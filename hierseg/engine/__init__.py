"""Training, evaluation, prediction, checkpoints, distributed set-up and typed configs."""
