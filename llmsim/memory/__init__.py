"""Memory models: cycle-level DRAM (channels, bank groups, banks, row buffers) and its energy."""

from llmsim.memory.dram import DramModel, DramStats, Requests
from llmsim.memory.timing import CMD_NAMES, CONSTRAINTS, TimingViolation, check_trace

__all__ = ["CMD_NAMES", "CONSTRAINTS", "DramModel", "DramStats", "Requests", "TimingViolation", "check_trace"]
