"""The one place the classification task's metric names are spelled, so a rename cannot leave a view or a test
reading a metric that no longer exists. The recipes monitor VAL_ACC (checkpoint.monitor, mode max)."""

from project.engine.best import best_name

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
TEST_LOSS = "test/loss"
TEST_ACC = "test/acc"

BEST_VAL_ACC = best_name(VAL_ACC)  # the run's best, logged when the fit ends (HPARAMS)

# TensorBoard pictures, tables and projections (the views in this folder). A tag ending in "/" is a prefix:
# one tag per class or clip follows it, e.g. "val/pr_curve/cat".
VAL_CONFUSION_MATRIX = "val/confusion_matrix"
VAL_CONFUSION_MATRIX_NORMALIZED = "val/confusion_matrix_normalized"
TEST_CONFUSION_MATRIX = "test/confusion_matrix"
TEST_CONFUSION_MATRIX_NORMALIZED = "test/confusion_matrix_normalized"
VAL_PER_CLASS = "val/per_class"
TEST_PER_CLASS = "test/per_class"
VAL_PR_CURVE = "val/pr_curve/"
TEST_PR_CURVE = "test/pr_curve/"
VAL_PR_CURVES = "val/pr_curves"  # one picture of every class's curve
TEST_PR_CURVES = "test/pr_curves"
VAL_SPECTROGRAM = "val/spectrogram/"
VAL_AUDIO = "val/audio/"
TEST_MISCLASSIFIED = "test/misclassified"
TEST_EMBEDDINGS = "test/embeddings"
