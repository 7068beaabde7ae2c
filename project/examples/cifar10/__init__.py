"""CIFAR-10: the source (official download), the airbench network, and the recipes in configs/."""

from project.examples.cifar10.airbench import AirbenchNet, WhiteningInit
from project.examples.cifar10.source import CIFAR10

__all__ = ["CIFAR10", "AirbenchNet", "WhiteningInit"]
