"""Lightning callbacks, one job per module; YAML names them as `project.callbacks.<Class>`.

- training.py: training tricks between optimizer steps (Lookahead, FreezeParameters)
- reports.py: TensorBoard pictures of errors (ConfusionMatrixImage, MisclassifiedImages)
- spectrograms.py: what an audio model hears (LogSpectrograms)
- per_class.py: precision, recall, F1 and PR curves per class (PerClassMetrics)
- embeddings.py: the test set's features in TensorBoard's projector (TestEmbeddings)
- graph.py: the network's graph in TensorBoard, off by default (ModelGraph)
- tuner.py: Lightning's learning-rate and batch-size finders, reporting the override to use
  (LearningRateFinder, BatchSizeFinder; configs/presets/lr_find.yaml, batch_size.yaml)
- figures.py, writers.py: the drawing (matplotlib) and writing (TensorBoard) the callbacks above share;
  TensorBoardLogger, Lightning's without its `epoch` card
- summary.py: the end-of-fit summary (RunSummary)
- predictions.py: `predict` writes a CSV (PredictionCSV)
- nan_guard.py: stop at the first NaN/inf loss (FiniteLossGuard)
- checkpoint_files.py: no leftovers of cut-short writes; a fit's final step saved (CheckpointFiles)
- resume.py: exact mid-epoch resume of the training loader (ResumeLoaderPosition); a new run from another's
  weights (StartFromWeights)
- stopping.py: interrupts stop between two steps and save that step's whole state (StopBetweenSteps)
- randomness.py: every random draw of a training step resumable (StepSeededRandomness)
- progress.py: plain progress lines off a terminal, a rich bar in one, and the fit's expected time
  (LineProgress, TerminalProgress, FitTimeEstimate)
"""

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
