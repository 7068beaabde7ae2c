from project.models.mlp import MLP
from project.models.resnet import ResNet
from project.models.rnn import RNNClassifier, RNNFrameClassifier

__all__ = ["MLP", "RNNClassifier", "RNNFrameClassifier", "ResNet"]
