from project.models.resnet import ResNet

__all__ = ["ResNet"]
