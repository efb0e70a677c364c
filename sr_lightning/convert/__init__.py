"""Import the authors' released weights as ordinary sr_lightning checkpoints.

``python -m sr_lightning.convert --format srcnn-mat --scale 3 x3.mat srcnn_x3.ckpt``.
Each format is a module with a ``load(path, scale) -> Imported`` function, registered in
:data:`FORMATS`. Files are read with ``scipy.io.loadmat``: nothing is unpickled.
"""

from __future__ import annotations

from sr_lightning.convert.formats import FORMATS
from sr_lightning.convert.imported import Imported
from sr_lightning.convert.importer import convert

__all__ = ["FORMATS", "Imported", "convert"]
