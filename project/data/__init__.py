"""Your data sets: sources (project/engine/data/source.py) or LightningDataModules of your own, one file each. The
engine's generic ones (image folders, WAV folders, feature files, LitData chunks) are in project/engine/data/, and
each example's source is in its own folder (project/examples/<name>/)."""
