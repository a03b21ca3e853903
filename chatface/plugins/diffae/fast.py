"""The fast render path: reduced precision, channels_last, fused attention, compilation.

A render's network calls are what a chat edit costs. ``FastPath`` says how they run:

- ``precision``: ``fp32`` (the exact path, bit for bit the official order of operations),
  ``bf16`` or ``fp16``. Reduced precision runs a second copy of the network with its
  convolution and linear weights in that dtype under autocast; GroupNorm statistics, the
  attention softmax and the DDIM update stay in float32.
- ``exact_steps``: the first steps of a render still run in float32. Their errors grow
  most: step one predicts x0 = (x - sqrt(1 - a) eps) / sqrt(a) with sqrt(a) ~ 0.02, so an
  error in eps reaches the image some 50 times larger (docs/performance.md has the
  measurements behind the default).
- ``compile``: ``torch.compile`` both networks, with batches padded to a few static
  sizes so each size compiles once; on CUDA in "reduce-overhead" mode, which replays CUDA
  graphs. Compiled fp32 is still fp32, though not bit for bit the eager order of sums.

Renders that need gradients (training mapping networks, zero-shot learning) always take
the exact path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatface.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.plugins.diffae.model import DiffAEModel

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE = ("auto", "on", "off")
# Batch sizes a compiled network sees: other sizes are padded up to the next one, so it is
# compiled (and on CUDA a graph captured) for at most these few shapes.
STATIC_BATCHES = (1, 2, 4, 8, 16, 32, 64)

Network = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class FastPath:
    """How renders run on one device (see the module docstring); resolved, no "auto"."""

    precision: str = "fp32"
    exact_steps: int = 0
    compile: bool = False

    @property
    def reduced(self) -> bool:
        return self.precision != "fp32"

    def describe(self) -> str:
        if not self.reduced and not self.compile:
            return "fp32 eager (exact)"
        parts = [self.precision, "channels_last"] if self.reduced else ["fp32"]
        if self.reduced and self.exact_steps:
            parts.append(f"first {self.exact_steps} steps fp32")
        if self.compile:
            parts.append("torch.compile")
        return ", ".join(parts)


def resolve(
    device: torch.device, precision: str = "auto", exact_steps: int = 2, compile: str = "auto"
) -> FastPath:
    """The fast path of ``device`` for the ``render.precision``, ``render.exact_steps`` and
    ``render.compile`` settings: ``auto`` picks bf16 where the hardware has it (CUDA, CPUs
    with AVX-512 BF16 or AMX), fp16 on older GPUs, fp32 elsewhere; compiles on CUDA only."""
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(
            f"render.precision must be one of {', '.join(PRECISIONS)}; got {precision!r}."
        )
    if compile not in COMPILE:
        raise ConfigError(f"render.compile must be one of {', '.join(COMPILE)}; got {compile!r}.")
    if isinstance(exact_steps, bool) or not isinstance(exact_steps, int) or exact_steps < 0:
        raise ConfigError(f"render.exact_steps must be 0 or more; got {exact_steps!r}.")
    if precision == "auto":
        if device.type == "cuda":
            with torch.cuda.device(device):  # bf16 tensor cores, not emulation
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            precision = "bf16" if native else "fp16"
        elif device.type == "cpu" and cpu_has_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    use_compile = compile == "on" or (compile == "auto" and device.type == "cuda")
    return FastPath(precision, exact_steps if precision != "fp32" else 0, use_compile)


def from_config(config: Config, device: torch.device) -> FastPath:
    return resolve(
        device, config["render.precision"], config["render.exact_steps"], config["render.compile"]
    )


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), i.e. faster than
    fp32; other AVX-512 CPUs only emulate it."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: may go
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def dtype_of(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def reduced_copy(model: DiffAEModel, precision: str) -> DiffAEModel:
    """A copy of ``model``'s UNet for reduced-precision steps: weights in that dtype except
    the GroupNorm affine parameters (the norms compute in float32), channels_last, fused
    attention, no semantic encoder (renders never use it). Built without a second float32
    copy; the exact model is left as it is."""
    import torch

    from chatface.plugins.diffae.model import DiffAEModel
    from chatface.plugins.diffae.nn import AttentionBlock

    dtype = dtype_of(precision)
    norms = {
        f"{name}.{param}"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.GroupNorm)
        for param in ("weight", "bias")
    }
    state = {
        key: value if key in norms else value.to(dtype)
        for key, value in model.state_dict().items()
        if not key.startswith("encoder.")
    }
    with torch.device("meta"):
        fast = DiffAEModel(model.config)
    del fast.encoder
    fast.load_state_dict(state, assign=True)
    fast = fast.to(memory_format=torch.channels_last).eval().requires_grad_(False)
    for module in fast.modules():
        if isinstance(module, AttentionBlock):
            module.fused = True
    return fast


def network(model: torch.nn.Module, precision: str, compile: bool) -> Network:
    """``(x_t, t, z_sem) -> eps`` in float32, running ``model`` as the fast path says."""
    import torch

    device = next(model.parameters()).device
    run: Any = model
    if compile:
        if device.type == "cuda":  # CUDA graphs
            run = torch.compile(model, mode="reduce-overhead", dynamic=False)
        else:  # the weights never change: inductor folds them in as constants
            run = torch.compile(model, dynamic=False, options={"freezing": True})
    if precision == "fp32":
        if not compile:
            return model

        def call_fp32(x: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
            return _padded(run, x, t, z_sem, device).float()

        return call_fp32
    dtype = dtype_of(precision)

    def call(x: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype):
            if compile:
                return _padded(run, x, t, z_sem, device).float()
            return run(x, t, z_sem).float()

    return call


def _padded(
    run: Network, x: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Run a compiled network with the batch padded to a static size, so it compiles (and
    on CUDA captures a graph) once per size; results for the real rows only."""
    import torch

    batch = x.shape[0]
    size = next((s for s in STATIC_BATCHES if s >= batch), batch)
    if size == batch:
        out = run(x, t, z_sem)
    else:
        pad = size - batch

        def grow(v: torch.Tensor) -> torch.Tensor:
            return torch.cat([v, v[:1].expand(pad, *v.shape[1:])])

        out = run(grow(x), grow(t), grow(z_sem))[:batch]
    # A replayed CUDA graph reuses its output buffer: copy before the next call.
    return out.clone() if device.type == "cuda" else out
