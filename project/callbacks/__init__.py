"""Your callbacks, one job a module, listed in a recipe's `trainer.callbacks`. The engine's (progress, resume, NaN
guard, tuner, ...) are in project/engine/callbacks/; a task's views live beside the task (project/tasks/)."""
