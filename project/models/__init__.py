from project.models.resnet import ResNet
from project.models.rnn import RNNClassifier

__all__ = ["ResNet", "RNNClassifier"]
