"""``--compile``: one training step (minibatch, loss, parameter gradient, Adam update) as one inductor graph.

Compiling only the loss left most of a light step outside the compiled code: autograd's backward, the optimiser
and the random draws each cost their own dispatches, and the compiled loss was no faster than eager (denoising
d=64: 1.34 ms against 1.28). Here the whole step is a pure function of tensors that the compiler sees at once:

- the gradient is ``torch.func.grad_and_value`` over the parameters, so backward is part of the graph;
- the update is torch's own functional Adam (``torch.optim.adam.adam``, the single-tensor form:
  ``torch.optim.Adam.step`` graph-breaks on purpose, and the foreach form does not trace), writing the
  parameters and moments in place, so that the network the metrics read is the one trained;
- random draws come from torch's default generator, seeded with the trial's seed just before training (a
  ``torch.Generator`` object is a graph break in dynamo), and inductor calls ATen's sampler instead of its own
  (``fallback_random``): its own per-element Philox took 670 us of a 1.5 ms denoising step. So the compiled
  step draws the same numbers as the eager one, and both train the same trajectory;
- dynamo's guards are not checked on each call (``guard_filter_fn``): the program always calls its step with
  the same tensors, and re-checking ~40 of them cost ~120 us a step. The program resets the compiler's caches
  before each trial, so no trial can run another's graph.

Measured on the 2-core CPU, one thread, min ms of 15 interleaved blocks of 40 steps in one process (default MLP,
batch 128): denoising d=64 1.32 eager -> 0.70 compiled; sliced d=64 3.30 -> 1.68; hutchinson d=64
2.19 -> 1.11; denoising-multiscale d=16 1.53 -> 0.60. The calls themselves cost ~25 us (the compiled
graph's prologue and copies), so fusing several steps into one call could save at most ~4% of the lightest step,
for several times the compile time: one step per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.nn.utils.stateless import _reparametrize_module
from torch.optim.adam import adam

Loss = Callable[..., torch.Tensor]


def _no_guards(entries: list[Any]) -> list[bool]:
    return [False] * len(entries)


class CompiledStep:
    """One Adam step of ``loss`` on ``net``, compiled whole; call it for the step's loss (a 0-d tensor)."""

    def __init__(
        self,
        net: torch.nn.Module,
        loss: Callable[[torch.nn.Module, torch.Tensor, None], torch.Tensor],
        train_x: torch.Tensor,
        batch_size: int,
        lr: float,
        check: Callable[[Any], torch.Tensor],
    ) -> None:
        torch._inductor.config.fallback_random = True
        self.net, self.loss, self.train_x, self.batch_size, self.lr, self.check = (
            net,
            loss,
            train_x,
            batch_size,
            lr,
            check,
        )
        self.names = [name for name, _ in net.named_parameters()]
        # Views of the network's own parameters: the in-place update trains the module that to_model hands out.
        self.params = [p.detach() for p in net.parameters()]
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.state_steps = [torch.zeros((), dtype=torch.float32, device=train_x.device) for _ in self.params]
        self.compiled = torch.compile(self.step, options={"guard_filter_fn": _no_guards})

    def _loss_at(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        weights: Mapping[str, torch.Tensor] = dict(zip(self.names, params))
        with _reparametrize_module(self.net, weights):
            return self.check(self.loss(self.net, x, None))

    def step(self) -> torch.Tensor:
        """The uncompiled step: what ``__call__`` compiles."""
        index = torch.randint(0, self.train_x.shape[0], (self.batch_size,), device=self.train_x.device)
        grads, loss = torch.func.grad_and_value(self._loss_at)(self.params, self.train_x[index])
        adam(
            self.params,
            list(grads),
            self.exp_avgs,
            self.exp_avg_sqs,
            [],
            self.state_steps,
            foreach=False,
            amsgrad=False,
            beta1=0.9,
            beta2=0.999,
            lr=self.lr,
            weight_decay=0.0,
            eps=1e-8,
            maximize=False,
        )
        return loss

    def __call__(self) -> torch.Tensor:
        return self.compiled()
