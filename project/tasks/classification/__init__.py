"""Single-label classification: cross-entropy around any net that maps a batch to class logits, accuracy,
and the TensorBoard views that read its outputs."""

from project.tasks.classification.embeddings import TestEmbeddings
from project.tasks.classification.module import Classifier
from project.tasks.classification.per_class import PerClassMetrics
from project.tasks.classification.reports import ConfusionMatrixImage, MisclassifiedImages
from project.tasks.classification.spectrograms import LogSpectrograms

__all__ = [
    "Classifier",
    "ConfusionMatrixImage",
    "LogSpectrograms",
    "MisclassifiedImages",
    "PerClassMetrics",
    "TestEmbeddings",
]
