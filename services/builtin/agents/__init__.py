"""Agents bundled with mleb. BASELINE_AGENT is a standalone script (numpy, pandas and
scikit-learn; the `mleb` client optional) that a sandbox runs as `python baseline_agent.py`."""

from pathlib import Path

BASELINE_AGENT = Path(__file__).with_name("baseline_agent.py")
