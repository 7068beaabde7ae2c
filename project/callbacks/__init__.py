"""Lightning callbacks, one job per module (each module's docstring says which); YAML names them as
`project.callbacks.<Class>`."""

from project.callbacks.checkpoint_files import CheckpointFiles
from project.callbacks.embeddings import TestEmbeddings
from project.callbacks.graph import ModelGraph
from project.callbacks.nan_guard import FiniteLossGuard, NonFiniteLossError
from project.callbacks.per_class import PerClassMetrics
from project.callbacks.predictions import PredictionCSV
from project.callbacks.progress import FitTimeEstimate, LineProgress, TerminalProgress, readable_progress
from project.callbacks.randomness import StepSeededRandomness
from project.callbacks.reports import ConfusionMatrixImage, MisclassifiedImages
from project.callbacks.resume import ResumeLoaderPosition, StartFromWeights
from project.callbacks.spectrograms import LogSpectrograms
from project.callbacks.stopping import StopBetweenSteps
from project.callbacks.summary import RunSummary
from project.callbacks.training import FreezeParameters, Lookahead
from project.callbacks.tuner import BatchSizeFinder, LearningRateFinder
from project.callbacks.writers import TensorBoardLogger

__all__ = [
    "BatchSizeFinder",
    "CheckpointFiles",
    "ConfusionMatrixImage",
    "FiniteLossGuard",
    "FitTimeEstimate",
    "FreezeParameters",
    "LearningRateFinder",
    "LineProgress",
    "LogSpectrograms",
    "Lookahead",
    "MisclassifiedImages",
    "ModelGraph",
    "NonFiniteLossError",
    "PerClassMetrics",
    "PredictionCSV",
    "ResumeLoaderPosition",
    "RunSummary",
    "StartFromWeights",
    "StepSeededRandomness",
    "StopBetweenSteps",
    "TensorBoardLogger",
    "TerminalProgress",
    "TestEmbeddings",
    "readable_progress",
]
