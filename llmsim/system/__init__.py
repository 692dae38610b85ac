"""Systems of devices and links: specs, parallelism as graph transforms, collectives on link units."""

from llmsim.system.run import SystemRun, bubble_fraction, memory_plan, simulate_system, simulate_system_step
from llmsim.system.spec import SystemSpec, is_system, load_system

__all__ = ["SystemRun", "SystemSpec", "bubble_fraction", "is_system", "load_system", "memory_plan",
           "simulate_system", "simulate_system_step"]
