"""blindmatch.sim: simulated federations running the real sans-I/O protocol.

    from blindmatch import sim
    scenario = sim.load("examples/sims/recall.toml")
    result = sim.run(scenario, out="sim-out/recall")      # results.json, report.md, plots
    result.results["recall"]

Nodes run ``protocol/matching.py`` (exact mode) or its ideal functionality with measured CPU
costs (modelled mode), driven by a discrete-event clock and a network model instead of sockets.
See ``examples/sims/README.md``.
"""

from .engine import Interrupted
from .run import RunResult, run
from .scenario import Scenario, ScenarioError, load, parse

__all__ = ["Interrupted", "RunResult", "Scenario", "ScenarioError", "load", "parse", "run"]
