"""How many torch threads a worker (or a throughput probe) uses on this machine."""

from __future__ import annotations

import os


def configure_threads() -> int:
    """Torch intra-op threads for this worker: ``$BALDISTILL_TORCH_THREADS`` if set, else one thread
    when the machine is already busier than its cores. On a shared 2-core machine two threads were
    measured 12x SLOWER than one for a SmolLM2 forward pass (threads spin-waiting for a core)."""
    import torch

    want = os.environ.get("BALDISTILL_TORCH_THREADS")
    if want:
        torch.set_num_threads(max(1, int(want)))
    elif os.getloadavg()[0] > (os.cpu_count() or 1):
        torch.set_num_threads(1)
    return torch.get_num_threads()
