"""Per-run compute measurements: peak memory of this run alone (not of the process's whole life).

On CUDA the allocator's peak is reset at the start of a run. On CPU a background thread samples the
process's resident set size every few milliseconds: `ru_maxrss` cannot be reset, and a Hydra sweep runs
many cells in one process, so it would measure run order rather than the design choice.
"""
from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), for reports and benchmark tables."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device=None) -> str:
    """Where a run ran: the CPU model and core count, plus the GPU model when the device is CUDA."""
    name = f"{cpu_name()}, {os.cpu_count()} cores"
    if device is None:
        return name
    import torch  # here, not above: reports and the sweep runner import this file and need no torch

    if torch.device(device).type == "cuda":
        name += f", {torch.cuda.get_device_name(device)}"
    return name


# The packages whose versions can change a run's or a pretraining's bits. Rebuilding the zoo on a new machine
# of this workplace (session 15: same code, seeds and thread count, tested not to matter) gave other bits from the
# first checkpoint on (the base LM's lm@500 perplexity 2.833 against the committed 2.814), with these packages
# unpinned and their earlier versions unrecorded; so runs and zoo manifests now record them.
SOFTWARE = ("torch", "transformers", "tokenizers", "numpy", "pillow", "peft", "safetensors")


def software() -> dict[str, str]:
    """Python's and those packages' versions and the processor's SIMD level: what a bit-level rerun must match."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    out["cpu"] = cpu_name()
    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return out


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


class PeakMemory:
    """pm = PeakMemory(device).start(); ...; pm.stop() -> the run's peak in MiB (CUDA allocated, or CPU RSS)."""

    def __init__(self, device: torch.device, interval_s: float = 0.005):
        self.device, self.interval, self.peak_mb = device, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def start(self) -> "PeakMemory":
        if self.device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_mb = rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def read(self) -> float:
        if self.device.type == "cuda":
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return max(self.peak_mb, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = self.read()
        return self.peak_mb
