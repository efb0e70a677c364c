"""Exact float arithmetic for a span of code, on any device: autocast off, and on CUDA no TF32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """A context where autocast is off on ``device``'s type (inside a ``bf16-mixed`` step its
    matmuls and convolutions would otherwise run in bf16), or a no-op context on a device type
    without autocast (``meta``, which the device-placement tests stand in for an accelerator).

    >>> with torch.autocast("cpu", dtype=torch.bfloat16), full_precision(torch.device("cpu")):
    ...     torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype
    torch.float32
    >>> with full_precision(torch.device("meta")):
    ...     torch.ones(2, 2, device="meta").matmul(torch.ones(2, 2, device="meta")).device
    device(type='meta')
    """
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


@contextlib.contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """:func:`full_precision`, and on CUDA float32 convolutions and matmuls in IEEE float32:
    cuDNN runs float32 convolutions in TF32 (10-bit mantissa) by default on Ampere and later,
    which moves reported PSNR in the third decimal. The TF32 switches the user set are
    restored on exit (they are process-wide: use it around evaluation, not inside a compiled
    forward).

    >>> with exact_float32(torch.device("cuda")):
    ...     torch.backends.cudnn.allow_tf32
    False
    >>> torch.backends.cudnn.allow_tf32  # PyTorch's default, restored
    True
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(full_precision(device))
        if device.type == "cuda":
            for backend in (torch.backends.cudnn, torch.backends.cuda.matmul):
                if backend.allow_tf32:
                    backend.allow_tf32 = False
                    stack.callback(setattr, backend, "allow_tf32", True)
        yield
