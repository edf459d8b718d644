"""Subnet samplers: uniform (one-shot / SPOS), balanced, and supernet-balanced (SBS)."""

from efsnas.sampling.samplers import BalancedSampler, SBSSampler, UniformSampler, create_sampler

__all__ = ["UniformSampler", "BalancedSampler", "SBSSampler", "create_sampler"]
