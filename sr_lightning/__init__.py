"""sr_lightning: a Lightning + Hydra framework for single-image super-resolution.

``sr_lightning.load(path)`` returns a trained network ready to upscale and evaluate
(:mod:`sr_lightning.api`); the entry points are ``python -m sr_lightning.train`` (``eval``,
``upscale``, ...).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["SRModel", "load"]


def __getattr__(name: str) -> Any:
    """``load`` and ``SRModel`` are imported on first use (``import sr_lightning`` stays light
    for the tools that need only a part of it)."""
    if name in __all__:
        from sr_lightning import api

        return getattr(api, name)
    raise AttributeError(f"module 'sr_lightning' has no attribute {name!r}")
