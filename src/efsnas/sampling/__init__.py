"""Subnet samplers: uniform (one-shot / SPOS), balanced, and supernet-balanced (SBS)."""
