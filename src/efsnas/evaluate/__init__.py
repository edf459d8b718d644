"""Scoring subnets with their supernets, and ranking metrics against a ground truth."""
