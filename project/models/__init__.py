from project.models.airbench import AirbenchNet
from project.models.resnet import ResNet
from project.models.rnn import RNNClassifier

__all__ = ["AirbenchNet", "RNNClassifier", "ResNet"]
