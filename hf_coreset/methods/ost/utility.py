"""One-step utility: how much one simulated optimiser step on a single row lowers the loss on an anchor set.

Everything here is functional (``torch.func.functional_call`` on a dict of parameter tensors): the warm-up
trains a copy of the trainable parameters and the simulated steps are applied to further copies, so the
proxy module a user hands in is never modified.

Terms: ``params`` are the proxy's trainable parameters (``requires_grad``; for a PEFT model the adapter's),
a *batch* is the dict of keyword inputs the proxy takes, and ``load_batch(rows)`` builds one from row indices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from ...errors import CoresetInputError

Batch = dict[str, Any]
Params = dict[str, torch.Tensor]
ADAM_EPS = 1e-8


def default_loss(outputs: Any, batch: Batch) -> torch.Tensor:
    """``outputs.loss`` (transformers models), ``outputs["loss"]``, or the output when it is a scalar."""
    if isinstance(outputs, torch.Tensor) and outputs.dim() == 0:
        return outputs
    loss = outputs.get("loss") if isinstance(outputs, dict) else getattr(outputs, "loss", None)
    if loss is None:
        raise CoresetInputError(
            f"The proxy returned {type(outputs).__name__} without a loss: give the batches labels (a "
            "transformers model then returns .loss) or pass loss_fn=lambda outputs, batch: <scalar tensor>."
        )
    return loss


class FunctionalProxy:
    """The proxy as a function of its trainable parameters: ``loss(params, batch)``.

    Frozen parameters and buffers are read from the module as they are; the trainable ones come from the
    ``params`` argument. The module is put in eval mode while scoring (no dropout: a utility must not depend
    on a random mask) and restored by :meth:`restore_mode`.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable | None = None, device: str | None = None):
        self.model = model
        self.loss_fn = loss_fn or default_loss
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        if not self.names:
            raise CoresetInputError(
                "The proxy has no trainable parameters (requires_grad=False everywhere): unfreeze the parameters "
                "OST should score with, e.g. wrap the model with peft.get_peft_model(model, LoraConfig(...))."
            )
        first = next(model.parameters())
        self.device = torch.device(device) if device else first.device
        self.dtype = first.dtype
        self._was_training = model.training
        model.eval()

    def initial_params(self) -> Params:
        """Detached copies of the trainable parameters (the proxy keeps its own tensors untouched)."""
        named = dict(self.model.named_parameters())
        return {name: named[name].detach().clone() for name in self.names}

    def loss(self, params: Params, batch: Batch) -> torch.Tensor:
        outputs = functional_call(self.model, params, args=(), kwargs=batch, strict=False)
        return self.loss_fn(outputs, batch)

    def to_device(self, batch: Batch) -> Batch:
        return {key: value.to(self.device) if isinstance(value, torch.Tensor) else value
                for key, value in batch.items()}

    def num_parameters(self) -> int:
        named = dict(self.model.named_parameters())
        return int(sum(named[name].numel() for name in self.names))

    def restore_mode(self) -> None:
        self.model.train(self._was_training)


def chunks(rows: Sequence[int], size: int) -> Iterator[np.ndarray]:
    rows = np.asarray(rows)
    for start in range(0, len(rows), size):
        yield rows[start: start + size]


def warm_up(proxy: FunctionalProxy, params: Params, load_batch: Callable, rows: Sequence[int], *,
            learning_rate: float, batch_size: int) -> tuple[Params, Params | None, list[float]]:
    """AdamW on copies of ``params`` over ``rows``; returns the trained copies, Adam's bias-corrected second
    moments (None without steps) and the loss of every step."""
    trained = {name: p.clone().requires_grad_(True) for name, p in params.items()}
    if len(rows) == 0:
        return {name: p.detach() for name, p in trained.items()}, None, []
    optimizer = torch.optim.AdamW(trained.values(), lr=learning_rate, weight_decay=0.0)
    losses = []
    for chunk in chunks(rows, batch_size):
        loss = proxy.loss(trained, proxy.to_device(load_batch(chunk)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    beta2 = optimizer.defaults["betas"][1]
    second_moments = {}
    for name, p in trained.items():
        state = optimizer.state.get(p)
        # A parameter the warm-up never reached has no moments: treat it as v = 0 (the step's eps floor).
        second_moments[name] = (torch.zeros_like(p) if not state
                                else state["exp_avg_sq"] / (1 - beta2 ** float(state["step"])))
    return {name: p.detach() for name, p in trained.items()}, second_moments, losses


def anchor_loss(proxy: FunctionalProxy, params: Params, load_batch: Callable, rows: Sequence[int],
                batch_size: int, *, with_gradient: bool = False) -> tuple[float, Params | None]:
    """Mean loss over the anchor rows (batches weighted by their size) and, optionally, its gradient."""
    params = {name: p.detach().requires_grad_(with_gradient) for name, p in params.items()}
    total, gradient = 0.0, None
    for chunk in chunks(rows, batch_size):
        with torch.set_grad_enabled(with_gradient):
            loss = proxy.loss(params, proxy.to_device(load_batch(chunk))) * (len(chunk) / len(rows))
        total += float(loss.detach())
        if with_gradient:
            parts = _gradients(loss, params)
            gradient = parts if gradient is None else {name: gradient[name] + parts[name] for name in params}
    return total, gradient


def flatten(tensors: Params) -> torch.Tensor:
    """One vector (or one row per sample, when every tensor has a leading sample dimension)."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


@dataclass
class PerSampleGradients:
    """Per-sample gradients of a chunk of rows, as one ``(rows, parameters)`` matrix.

    ``"vmap"`` collates the chunk once and maps ``torch.func.grad`` over its leading dimension (each row seen
    by the model as a batch of one); ``"loop"`` collates and differentiates one row at a time, which works
    for any model and any batch layout (e.g. Qwen2-VL's flattened image patches). ``"auto"`` tries vmap and
    falls back to the loop for good at the first failure; ``mode`` then says which ran and
    ``fallback_reason`` why.
    """

    mode: str
    fallback_reason: str | None = None  # set when "auto" gave up on vmap

    def compute(self, proxy: FunctionalProxy, params: Params, load_batch: Callable, rows: np.ndarray) -> torch.Tensor:
        if self.mode in ("auto", "vmap") and self.fallback_reason is None:
            try:
                grads = _vmapped_gradients(proxy, params, proxy.to_device(load_batch(rows)))
                self.mode = "vmap"
                return grads
            except Exception as error:  # noqa: BLE001 (any vmap limitation: data-dependent control flow, .item())
                if self.mode == "vmap":
                    raise CoresetInputError(
                        f"per_sample_gradients='vmap' failed on this proxy ({type(error).__name__}: {error}); "
                        "use per_sample_gradients='loop' (one backward per row)."
                    ) from error
                self.fallback_reason = f"{type(error).__name__}: {error}"[:300]
        self.mode = "loop"
        return _looped_gradients(proxy, params, load_batch, rows)


def _vmapped_gradients(proxy: FunctionalProxy, params: Params, batch: Batch) -> torch.Tensor:
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
    sizes = {len(v) for v in tensors.values()}
    if len(sizes) != 1:
        raise ValueError(f"the batch's tensors do not share one leading row dimension (sizes {sorted(sizes)})")
    others = {k: v for k, v in batch.items() if k not in tensors}

    def loss_of_one(p: Params, example: dict[str, torch.Tensor]) -> torch.Tensor:
        single = {k: v.unsqueeze(0) for k, v in example.items()}  # the model sees a batch of one
        return proxy.loss(p, {**single, **others})

    grads = vmap(grad(loss_of_one), in_dims=(None, 0))(params, tensors)
    return torch.cat([g.reshape(len(g), -1) for g in grads.values()], dim=1)


def _looped_gradients(proxy: FunctionalProxy, params: Params, load_batch: Callable, rows: np.ndarray) -> torch.Tensor:
    params = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    return torch.stack([flatten(_gradients(proxy.loss(params, proxy.to_device(load_batch(np.asarray([row])))),
                                           params)) for row in rows])


def _gradients(loss: torch.Tensor, params: Params) -> Params:
    """d loss / d params; parameters the loss does not reach (e.g. a vision adapter on a text-only row) get 0."""
    parts = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {name: torch.zeros_like(p) if part is None else part for (name, p), part in zip(params.items(), parts)}


def count_sketch(gradients: torch.Tensor, width: int, seed: int) -> torch.Tensor:
    """CountSketch of each row (random bucket and sign per coordinate): inner products are preserved in
    expectation, with memory O(parameters) instead of a dense projection matrix. Narrow rows are kept as is."""
    n_params = gradients.shape[1]
    if n_params <= width:
        return gradients
    generator = torch.Generator().manual_seed(seed)
    buckets = torch.randint(width, (n_params,), generator=generator).to(gradients.device)
    signs = (torch.randint(2, (n_params,), generator=generator) * 2 - 1).to(gradients)
    sketch = torch.zeros(len(gradients), width, dtype=gradients.dtype, device=gradients.device)
    return sketch.index_add_(1, buckets, gradients * signs)


def exact_utilities(proxy: FunctionalProxy, params: Params, steps: torch.Tensor, load_anchor: Callable,
                    anchor_rows: Sequence[int], batch_size: int, base_loss: float) -> np.ndarray:
    """``L_V(theta) - L_V(theta - step_i)`` for each row of ``steps`` (already scaled by eta and the
    preconditioner), each evaluated on a functional copy of the parameters."""
    utilities = np.empty(len(steps))
    shapes = [(name, p.shape, p.numel()) for name, p in params.items()]
    for i, step in enumerate(steps):
        moved, offset = {}, 0
        for name, shape, size in shapes:
            moved[name] = params[name] - step[offset: offset + size].reshape(shape)
            offset += size
        loss, _ = anchor_loss(proxy, moved, load_anchor, anchor_rows, batch_size)
        utilities[i] = base_loss - loss
    return utilities


@dataclass
class UtilityScores:
    """Utilities of the candidate rows (aligned with the rows asked for), their gradient sketches when
    requested, and what happened (anchor loss, warm-up, per-sample gradient mode)."""

    utilities: np.ndarray
    sketches: np.ndarray | None
    diagnostics: dict[str, Any]


def one_step_utilities(
    proxy: FunctionalProxy,
    load_batch: Callable[[np.ndarray], Batch],
    candidate_rows: Sequence[int],
    *,
    load_anchor: Callable[[np.ndarray], Batch],
    anchor_rows: Sequence[int],
    warmup_rows: Sequence[int],
    estimator: str,
    learning_rate: float,
    preconditioner: str | None,
    batch_size: int,
    warmup_learning_rate: float,
    warmup_batch_size: int,
    per_sample_gradients: str = "auto",
    sketch_dim: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> UtilityScores:
    """Warm up a copy of the proxy, then score every candidate row by its one-step utility on the anchor set.

    ``first_order``: ``U_i = eta <g_V, P g_i>`` (P: identity or Adam's ``1 / (sqrt(v) + eps)``);
    ``exact``: ``U_i = L_V(theta) - L_V(theta - eta P g_i)``.
    """
    torch.manual_seed(seed)
    params, second_moments, warmup_losses = warm_up(
        proxy, proxy.initial_params(), load_batch, warmup_rows,
        learning_rate=warmup_learning_rate, batch_size=warmup_batch_size)
    base_loss, anchor_gradient = anchor_loss(proxy, params, load_anchor, anchor_rows, batch_size,
                                             with_gradient=estimator == "first_order")
    scale = (1.0 / (flatten(second_moments).sqrt() + ADAM_EPS)) if preconditioner == "adam" else 1.0
    direction = None if anchor_gradient is None else flatten(anchor_gradient) * scale
    gradients = PerSampleGradients(per_sample_gradients)
    utilities, sketches = [], []
    for chunk in tqdm(list(chunks(candidate_rows, batch_size)), desc="OST one-step utilities",
                      disable=not show_progress):
        g = gradients.compute(proxy, params, load_batch, chunk).detach()
        if estimator == "first_order":
            utilities.append((learning_rate * (g @ direction)).double().cpu().numpy())
        else:
            utilities.append(exact_utilities(proxy, params, learning_rate * g * scale, load_anchor, anchor_rows,
                                             batch_size, base_loss))
        if sketch_dim:
            sketches.append(count_sketch(g, sketch_dim, seed).double().cpu().numpy())
    diagnostics = {
        "estimator": estimator,
        "anchor_rows": len(anchor_rows),
        "anchor_loss": base_loss,
        "warmup_steps": len(warmup_losses),
        "warmup_loss_first_last": [warmup_losses[0], warmup_losses[-1]] if warmup_losses else None,
        "trainable_parameters": proxy.num_parameters(),
        "per_sample_gradients": gradients.mode,
    }
    if gradients.fallback_reason:
        diagnostics["vmap_fallback_reason"] = gradients.fallback_reason
    return UtilityScores(
        utilities=np.concatenate(utilities) if utilities else np.empty(0),
        sketches=np.concatenate(sketches) if sketches else None,
        diagnostics=diagnostics,
    )
