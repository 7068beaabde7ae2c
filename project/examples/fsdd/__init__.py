"""The Free Spoken Digit Dataset: the source (official download, speakers as groups) and the recipes in
configs/; the network is the shared RNN (project/models/rnn.py)."""

from project.examples.fsdd.source import FSDD

__all__ = ["FSDD"]
