"""Machine-dependent speed settings: the precision choice and the allocator tuning."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from sr_lightning.hardware import resolve_precision

# Twelve training steps of a small conv net (4 MiB activations); prints the minor page
# faults of the last eight (the heap has grown by then).
_STEPS = """
import resource, sys, torch
from sr_lightning.hardware import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
                          torch.nn.ReLU(), torch.nn.Conv2d(32, 1, 3, padding=1))
x = torch.rand(8, 1, 64, 64)
for i in range(12):
    if i == 4:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x).square().mean().backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_tuned_allocator_reuses_freed_memory_instead_of_faulting_it_in_again():
    default, tuned = _faults("default"), _faults("tuned")
    assert default > 8 * 500  # glibc hands the step's memory back to the kernel and faults it in again
    assert tuned < 100


def test_precision_auto_is_a_lightning_precision():
    assert resolve_precision("32-true") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert resolve_precision("auto", "cpu") in ("bf16-mixed", "32-true")
