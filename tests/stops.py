"""A fit stopped where a test wants it: tests/test_reliability.py and benchmarks/streaming_resume.py."""

import lightning as L


class InterruptAt(L.Callback):
    """Presses Ctrl-C (raises KeyboardInterrupt) at the end of training step `step`."""

    observes_only = True  # it stops a run, as a signal would, and changes nothing it computes: a resume drops it

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def interrupt_at(step: int) -> str:
    """The command-line option that adds `InterruptAt(step)` to a fit's callbacks."""
    return f'--trainer.callbacks+={{"class_path": "{__name__}.InterruptAt", "init_args": {{"step": {step}}}}}'
