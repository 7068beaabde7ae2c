"""The network's graph in TensorBoard's GRAPHS tab. Off by default: tracing the net costs a forward pass and,
for a large net, seconds (`--trainer.callbacks+=project.engine.callbacks.ModelGraph` turns it on)."""

import warnings

import torch
from lightning.pytorch.utilities import rank_zero_warn

from project.engine.callbacks.writers import TensorBoardView, tensorboards


class ModelGraph(TensorBoardView):
    """Writes the graph of the model's `net` (else the whole model) once, traced on the first training batch of a
    fit, in eval mode without gradients (no BatchNorm statistic moves, no random number drawn). A net the tracer
    cannot follow gives one warning and no graph."""

    def __init__(self):
        super().__init__()
        self.done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.done:
            return
        self.done = True
        writers = tensorboards(trainer)
        if not writers:
            return
        inputs = batch[0]
        net = getattr(pl_module, "net", None)
        net = net if isinstance(net, torch.nn.Module) else pl_module
        was_training = net.training
        net.eval()
        try:
            # torch.jit.trace, which add_graph uses, warns of its deprecation on every call
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                for writer in writers:
                    writer.add_graph(net, inputs if isinstance(inputs, tuple | list) else (inputs,))
        except Exception as err:  # the tracer's errors are of many types; none should end the fit
            rank_zero_warn(f"ModelGraph: {type(net).__name__} could not be traced, so no graph is logged: {err}")
        finally:
            net.train(was_training)
