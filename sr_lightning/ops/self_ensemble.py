"""x8 self-ensemble (Lim et al., EDSR, CVPRW 2017; the "+" rows of SR papers): run a
network on the 8 flips/rotations of its input, undo each on the output, average."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from sr_lightning.errors import UserError

# The dihedral group of the square: k = 0..3 rotations by 90 * k degrees, k = 4..7 the same
# followed by a left-right flip.
TRANSFORMS = 8


def transform(x: Tensor, k: int) -> Tensor:
    """The k-th of the 8 flips/rotations of (..., H, W) (k = 0: the identity)."""
    x = x.rot90(k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def untransform(y: Tensor, k: int) -> Tensor:
    """The inverse of :func:`transform` (``untransform(transform(x, k), k) == x``)."""
    y = y.flip(-1) if k >= 4 else y
    return y.rot90(-(k % 4), dims=(-2, -1))


def check_rotatable(net_name: str, fixed_input_size: tuple[int, int] | None, shape: tuple[int, int],
                    option: str) -> None:
    """Refuse, in one line naming ``option``, a network that takes only one LR size when the
    rotations of an ``shape`` (h, w) input would not have it."""
    if fixed_input_size is None:
        return
    h, w = (int(v) for v in shape)
    if (h, w) != tuple(fixed_input_size) or h != w:
        fh, fw = fixed_input_size
        raise UserError(f"{option}: {net_name} takes only {fh}x{fw} LR inputs, and the self-ensemble also feeds it "
                        f"the 90-degree rotations of this {h}x{w} input ({w}x{h}); it needs square inputs of the "
                        f"network's size: set {option}=false")


def self_ensemble(fn: Callable[[Tensor], Tensor], lr: Tensor) -> Tensor:
    """The mean of ``untransform(fn(transform(lr, k)), k)`` over the 8 transforms.

    Args:
        fn: LR (N, C, h, w) -> SR (N, C, s*h, s*w) (the transposed input gives the
            transposed size).
        lr: (N, C, h, w).

    Returns:
        (N, C, s*h, s*w) float32, unclamped and unquantised: averaged before both, as the
        EDSR paper does.

    A network that commutes with flips and rotations gives its own output:

    >>> import torch
    >>> lr = torch.rand(1, 1, 5, 7)
    >>> bool(torch.allclose(self_ensemble(lambda x: x.repeat_interleave(2, -1).repeat_interleave(2, -2), lr),
    ...                     lr.repeat_interleave(2, -1).repeat_interleave(2, -2)))
    True
    """
    total = None
    for k in range(TRANSFORMS):
        out = untransform(fn(transform(lr, k)), k).float()
        total = out if total is None else total + out
    return total / TRANSFORMS
