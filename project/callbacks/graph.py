"""The network's graph in TensorBoard's GRAPHS tab. Off by default: it traces the net once (torch.jit),
which costs a forward pass and, for a large net, seconds. Add it to a recipe's trainer.callbacks (or
`--trainer.callbacks+=project.callbacks.ModelGraph`) to see it."""

import warnings

import torch
from lightning.pytorch.utilities import rank_zero_warn

from project.callbacks.writers import TensorBoardView, tensorboards


class ModelGraph(TensorBoardView):
    """Writes the graph of `net` once, on the first training batch of a fit (its real inputs).

    The trace runs in eval mode without gradients, so it moves no BatchNorm statistic and draws no
    random number a resumed run would miss. A net the tracer cannot follow (data-dependent control
    flow, say) gives one warning and the fit goes on without a graph.
    """

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
        net = pl_module.net
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
