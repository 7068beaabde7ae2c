"""The one place metric names are spelled.

The LightningModule logs under these names and the checkpoint callback monitors them, so a rename
here cannot leave a monitor watching a metric that no longer exists.
"""

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
TEST_LOSS = "test/loss"
TEST_ACC = "test/acc"

# What "best" means for checkpoints and early stopping.
MONITOR = VAL_ACC
MONITOR_MODE = "max"

# The best monitored value of a fit, shown beside the hyperparameters in TensorBoard's HPARAMS tab
BEST_VAL_ACC = "hp/best_val_acc"
