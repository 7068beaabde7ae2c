"""The one place the speech task's metric and view names are spelled, so a rename cannot leave a monitor
watching a metric that no longer exists. The recipes' `checkpoint:` section names MONITOR and MONITOR_MODE."""

TRAIN_LOSS = "train/loss"  # CTC loss, averaged over each utterance's target length
LR = "train/lr"
VAL_LOSS = "val/loss"
VAL_WER = "val/wer"  # word error rate: (substitutions + deletions + insertions) / reference words
VAL_CER = "val/cer"  # the same over characters
TEST_LOSS = "test/loss"
TEST_WER = "test/wer"
TEST_CER = "test/cer"

# What "best" means for checkpoints, early stopping and the sweep: fewer word errors
MONITOR = VAL_WER
MONITOR_MODE = "min"

# TensorBoard views (views.py). A tag ending in "/" is a prefix: one card per shown utterance follows it.
VAL_SPECTROGRAM = "val/spectrogram/"
VAL_AUDIO = "val/audio/"
VAL_WORST = "val/worst_utterances"
TEST_WORST = "test/worst_utterances"

# The prediction CSV's columns (predict_step)
HYPOTHESIS = "hypothesis"
REFERENCE = "reference"
