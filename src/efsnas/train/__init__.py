"""Supernet training: checkpoints, distributed set-up, the trainer."""
