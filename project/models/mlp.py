"""A multilayer perceptron for feature vectors (tables): (B, F) -> (B, num_outputs): class logits, label logits or
values, as many as the data's targets need."""

from torch import Tensor, nn


class MLP(nn.Module):
    """Args:
    num_outputs: the output layer's size, from the data: a logit per class or label, a value per target.
    in_features: F, the length of each feature vector, from the data.
    hidden: the width of each hidden layer; [] for a linear classifier.
    dropout: after each hidden layer, in training.
    """

    def __init__(self, num_outputs: int, in_features: int, hidden: tuple[int, ...] = (128,), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU(), nn.Dropout(dropout)]
            in_features = width
        self.layers = nn.Sequential(*layers, nn.Linear(in_features, num_outputs))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
