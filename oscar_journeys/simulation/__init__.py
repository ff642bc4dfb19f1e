"""A simulated sportswear shop to try the journey policies in: hidden customer types, their
features, the campaigns' decision points day by day, and what each decision earned, in
truth and in the draws. Pure numpy/pandas (no Django; an import-linter contract in
setup.cfg enforces it). For the demo, the tests and the benchmark.

    world = World(n_customers=20_000, seed=1)
    result = run(world, ManualPriorityPolicy(world.campaigns), start=date(2025, 1, 6), days=56)
    result.summary(from_day=28)
"""

from . import policies, runner, world
from .policies import NothingPolicy, OraclePolicy, RandomPolicy
from .runner import RunResult, run
from .world import World, synthetic_eligible, synthetic_features

__all__ = [
    "NothingPolicy",
    "OraclePolicy",
    "RandomPolicy",
    "RunResult",
    "World",
    "policies",
    "run",
    "runner",
    "synthetic_eligible",
    "synthetic_features",
    "world",
]
