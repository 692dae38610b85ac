"""Design-space sweeps: spaces over any spec field, a resumable store, local/Ray runners, Pareto fronts."""

from llmsim.sweep.pareto import pareto_front
from llmsim.sweep.runner import SweepOutcome, run_point, run_sweep
from llmsim.sweep.space import SweepSpec, config_hash
from llmsim.sweep.store import ResultStore, read_rows

__all__ = ["ResultStore", "SweepOutcome", "SweepSpec", "config_hash", "pareto_front", "read_rows", "run_point",
           "run_sweep"]
