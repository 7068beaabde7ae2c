"""The engine's callbacks, one job per module (each module's docstring says which): those every command runs
(project/engine/cli.py) and those a recipe may list, for any task. YAML names them as
`project.engine.callbacks.<Class>`; a task's own views live beside the task (project/tasks/)."""

from project.engine.callbacks.checkpoint_files import CheckpointFiles
from project.engine.callbacks.graph import ModelGraph
from project.engine.callbacks.nan_guard import FiniteLossGuard, NonFiniteLossError
from project.engine.callbacks.predictions import PredictionCSV
from project.engine.callbacks.progress import FitTimeEstimate, LineProgress, TerminalProgress, readable_progress
from project.engine.callbacks.randomness import StepSeededRandomness
from project.engine.callbacks.resume import ResumeLoaderPosition, StartFromWeights
from project.engine.callbacks.schedule import ScheduleFitsTheRun
from project.engine.callbacks.sizes import SizesFromData
from project.engine.callbacks.stopping import StopBetweenSteps
from project.engine.callbacks.summary import RunSummary
from project.engine.callbacks.training import FreezeParameters, Lookahead
from project.engine.callbacks.tuner import BatchSizeFinder, LearningRateFinder
from project.engine.callbacks.writers import TensorBoardLogger

__all__ = [
    "BatchSizeFinder",
    "CheckpointFiles",
    "FiniteLossGuard",
    "FitTimeEstimate",
    "FreezeParameters",
    "LearningRateFinder",
    "LineProgress",
    "Lookahead",
    "ModelGraph",
    "NonFiniteLossError",
    "PredictionCSV",
    "ResumeLoaderPosition",
    "RunSummary",
    "ScheduleFitsTheRun",
    "SizesFromData",
    "StartFromWeights",
    "StepSeededRandomness",
    "StopBetweenSteps",
    "TensorBoardLogger",
    "TerminalProgress",
    "readable_progress",
]
