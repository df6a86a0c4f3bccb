"""How many torch threads a worker (or a throughput probe) uses on this machine."""

from __future__ import annotations

import os
import statistics
import time

_DEFAULT: int | None = None


def runnable_others(samples: int = 5, interval_s: float = 0.05, read=None) -> float:
    """Threads other than this one ready to run right now: the median of a few reads of the kernel's
    runnable count (``/proc/loadavg``, 4th field "running/total"), minus the reader itself.

    Unlike the 1-minute load average this does not remember a run that just ended in the same
    process (a seed sweep runs its cells back to back), which would otherwise make every later run
    single-threaded. Falls back to the load average where ``/proc/loadavg`` is missing.

    >>> runnable_others(read=lambda: "2.10 1.90 1.20 1/130 999")
    0.0
    >>> runnable_others(read=lambda: "5.00 5.00 5.00 4/130 999")
    3.0
    """
    def default_read() -> str:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return fh.read()

    read = read or default_read
    counts = []
    for i in range(samples):
        try:
            counts.append(int(read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return os.getloadavg()[0]
        if i + 1 < samples and interval_s:
            time.sleep(interval_s)
    return float(statistics.median(counts))


def configure_threads() -> int:
    """Torch intra-op threads for this worker: ``$BALDISTILL_TORCH_THREADS`` if set, else one thread
    when other work already keeps every core busy. On a shared 2-core machine two threads were
    measured 12x SLOWER than one for a SmolLM2 forward pass (threads spin-waiting for a core)."""
    import torch

    global _DEFAULT
    if _DEFAULT is None:  # torch's own choice, kept so a later quiet run in this process gets it back
        _DEFAULT = torch.get_num_threads()
    want = os.environ.get("BALDISTILL_TORCH_THREADS")
    if want:
        torch.set_num_threads(max(1, int(want)))
    elif runnable_others() >= (os.cpu_count() or 1):
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(_DEFAULT)
    return torch.get_num_threads()
