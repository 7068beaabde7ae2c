from project.models.airbench import AirbenchNet
from project.models.mlp import MLP
from project.models.resnet import ResNet
from project.models.rnn import RNNClassifier

__all__ = ["MLP", "AirbenchNet", "RNNClassifier", "ResNet"]
