"""Tasks: a LightningModule each (loss, metrics, optimizer), with the metric names and the views that read
its outputs. The engine serves any LightningModule; these are ours."""
