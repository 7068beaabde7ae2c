"""The Free Spoken Digit Dataset: the source (official download, speakers as groups), connected digits made from
it for speech recognition, and the recipes in configs/; the networks are the shared RNNs (project/models/rnn.py)."""

from project.examples.fsdd.connected import ConnectedDigits
from project.examples.fsdd.source import FSDD

__all__ = ["FSDD", "ConnectedDigits"]
