"""The one place metric names are spelled, so a rename cannot leave a monitor watching a metric that no
longer exists."""

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
LR = "train/lr"  # the scheduled learning rate (LearningRateMonitor), beside the loss rather than above it
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
TEST_LOSS = "test/loss"
TEST_ACC = "test/acc"

# What "best" means for checkpoints and early stopping.
MONITOR = VAL_ACC
MONITOR_MODE = "max"

# The best monitored value of a fit, shown beside the hyperparameters in TensorBoard's HPARAMS tab; under
# `val/` so that its one point sits with the validation curves, not on a card of its own above them
BEST_VAL_ACC = "val/best_acc"

# TensorBoard pictures, tables and projections (project/engine/callbacks/). A tag ending in "/" is a prefix:
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
LR_FINDER = "tuner/lr_finder"
