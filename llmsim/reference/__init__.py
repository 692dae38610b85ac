"""PyTorch reference: the same ModelSpec as a plain nn.Module with random weights, timed on CPU
or CUDA (eager and CUDA-graph replay), and compared with the simulator op class by op class.

Import only when torch is installed (``llmsim.reference.require_torch`` gives a clear error)."""

from __future__ import annotations

from llmsim.errors import LlmsimError


def require_torch():
    """Return the ``torch`` module or raise a one-line error saying how to get it."""
    try:
        import torch
    except ImportError:
        raise LlmsimError("llmsim validate needs PyTorch: pip install torch (or llmsim[test])") from None
    return torch
