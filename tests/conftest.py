import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli():
    """Run ``python -m llmsim.cli ARGS`` in a subprocess; returns CompletedProcess."""
    import subprocess

    def _run(*args: str, cwd: Path | None = None, timeout: float = 300):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return subprocess.run([sys.executable, "-m", "llmsim.cli", *args], capture_output=True, text=True,
                              cwd=cwd or ROOT, env=env, timeout=timeout)

    return _run
