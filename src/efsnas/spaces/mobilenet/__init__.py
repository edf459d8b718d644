"""MobileNet (ProxylessNAS-style, ImageNet) search space."""

from efsnas.spaces.mobilenet.space import MobileNetSpace

__all__ = ["MobileNetSpace"]
