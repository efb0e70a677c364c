"""Machine-dependent speed settings: the precision choice and the allocator tuning."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys

import pytest
import torch

import sr_lightning.hardware as hardware
from sr_lightning.hardware import (
    ISA_LIMITS,
    SPEED_DEFAULTS,
    _warn_emulated_bf16,
    cpu_flags,
    cpu_model,
    describe_cpu,
    isa_environment,
    quickstart_overrides,
    resolve_precision,
    resolve_speed,
)

# Twelve training steps of a small conv net (4 MiB activations); prints the minor page
# faults of each of the last eight (the heap has grown by then).
_STEPS = """
import resource, sys, torch
from sr_lightning.hardware import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
                          torch.nn.ReLU(), torch.nn.Conv2d(32, 1, 3, padding=1))
x = torch.rand(8, 1, 64, 64)
faults = []
for i in range(12):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x).square().mean().backward()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(*faults[4:])
"""


def _faults(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True)
    return [int(n) for n in out.stdout.split()]


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_tuned_allocator_reuses_freed_memory_instead_of_faulting_it_in_again():
    """Per step, once the heap has grown: glibc's defaults fault the step's memory in again
    every step; tuned, a typical step faults (almost) nothing. (The median: a one-off
    growth of some buffer, seen once under the AVX2 limit as 1024 faults in one step, is not
    the steady state.)"""
    default, tuned = _faults("default"), _faults("tuned")
    assert statistics.median(default) > 500
    assert statistics.median(tuned) < 20, tuned


def test_an_explicit_precision_is_kept():
    assert resolve_precision("32-true") == "32-true"
    assert resolve_precision("16-mixed", "gpu") == "16-mixed"


@pytest.mark.parametrize(("amx", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_cpu_takes_bf16_only_with_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPU, unlimited
    assert resolve_precision("auto") == expected
    assert resolve_precision("auto", "cpu") == expected


def test_an_isa_limit_switches_amx_off(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (the commodity-CPU emulation) disables oneDNN's AMX kernels
    although cpuid still reports AMX: precision auto follows the emulated ISA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    for isa, expected in [("AVX2", "32-true"), ("avx512_core", "32-true"), ("AVX512_CORE_AMX", "bf16-mixed"),
                          ("", "bf16-mixed")]:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert resolve_precision("auto") == expected, isa
    assert describe_cpu().endswith("+AMX")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert describe_cpu().startswith(cpu_model()) and not describe_cpu().endswith("+AMX")


def test_forced_bf16_on_a_cpu_that_emulates_it_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPU, unlimited
    _warn_emulated_bf16.cache_clear()
    for _ in range(2):
        assert resolve_precision("bf16-mixed") == "bf16-mixed"  # the user's choice is kept
    warnings = [r for r in caplog.records if "bf16 is emulated on this CPU" in r.getMessage()]
    assert len(warnings) == 1 and "about 4-12x slower than fp32" in warnings[0].getMessage()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPU, unlimited
    _warn_emulated_bf16.cache_clear()
    caplog.clear()
    resolve_precision("bf16-mixed")
    assert not caplog.records


@pytest.mark.parametrize("amx", [True, False])
def test_quickstart_fits_the_network_to_the_hardware(monkeypatch, amx):
    """make train keeps VDSR where bf16 units make it fast, else trains edsr_quick."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPU, unlimited
    overrides, why = quickstart_overrides()
    assert overrides == ([] if amx else ["model=edsr_quick"])
    assert why.startswith("quickstart: ") and cpu_model() in why


def test_quickstart_command_prints_the_overrides():
    proc = subprocess.run([sys.executable, "-m", "sr_lightning.hardware", "quickstart"], capture_output=True,
                          text=True, check=True)
    overrides, why = quickstart_overrides()
    assert proc.stdout.strip() == " ".join(overrides) and proc.stderr.strip() == why


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), "32-true"), ((7, 5), "32-true"),
                                                      ((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed")])
def test_auto_on_gpu_takes_bf16_from_ampere_on(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert resolve_precision("auto", "gpu") == expected
    assert resolve_precision("auto") == expected


@pytest.mark.skipif(not cpu_flags(), reason="no /proc/cpuinfo flags on this OS")
def test_an_isa_the_cpu_has_gives_the_limits_that_emulate_it():
    assert isa_environment("native") == {}
    for name, limit in ISA_LIMITS.items():
        if limit.flag in cpu_flags():
            assert isa_environment(name) == {"ONEDNN_MAX_CPU_ISA": limit.onednn, "ATEN_CPU_CAPABILITY": limit.aten}


def test_an_isa_the_cpu_lacks_says_which_it_has(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"sse4_2", "avx", "avx2"}))
    with pytest.raises(ValueError, match=r"^--isa amx: this CPU \(.+\) has no amx_bf16; it can run native, avx2$"):
        isa_environment("amx")
    with pytest.raises(ValueError, match="--isa avx512: .* has no avx512f"):
        isa_environment("avx512")
    with pytest.raises(ValueError, match="--isa sse2: unknown instruction set; choose native or one of avx2, avx512"):
        isa_environment("sse2")


def test_the_machine_class_follows_the_limits_of_the_process():
    """Under ATen's and oneDNN's lowest limits a process names its class by them and trains
    in fp32, whatever the CPU has."""
    code = ("from sr_lightning.hardware import describe_cpu, machine_class, resolve_precision; "
            "print(machine_class(), resolve_precision('auto', 'cpu'), describe_cpu(), sep='|')")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().split("|") == ["DEFAULT", "32-true", f"{cpu_model()}, DEFAULT"]


@pytest.mark.parametrize(("amx", "machine"), [(True, "bf16"), (False, "fp32")])
def test_auto_speed_settings_are_the_machine_class_defaults(monkeypatch, amx, machine):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPU, unlimited
    expected = vars(SPEED_DEFAULTS[machine])
    assert resolve_speed({}) == expected
    assert resolve_speed({"channels_last": "auto", "compile": "auto", "threads": "auto"}) == expected
    given = {"channels_last": False, "tune_allocator": False, "compile": True, "threads": 3}
    assert resolve_speed(given) == given  # an explicit value is kept


@pytest.mark.parametrize(("options", "message"), [
    ({"channels_last": "yes"}, "channels_last='yes': use true, false or auto"),
    ({"compile": 1}, "compile=1: use true, false or auto"),
    ({"threads": 0}, "threads=0: give a positive number of threads, or auto"),
    ({"threads": "two"}, "threads='two': give a positive number"),
    ({"threads": True}, "threads=True: give a positive number"),
])
def test_a_bad_speed_setting_names_the_option(options, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        resolve_speed(options)
