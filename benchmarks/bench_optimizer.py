"""How much the self-optimizing policy earns on the simulated shop, next to random choice,
manual priority and the oracle; and how fast it decides.

1. Simulation (``oscar_journeys.simulation``): a sportswear shop of ``--customers``
   customers with hidden types, ``--days`` daily decision rounds; the policy learns every
   week from the decisions whose 7-day attribution window has closed. Every policy faces the
   same customers and the same decision points (follow-ups depend on what each policy did).
   Printed: the true expected incremental value (from the hidden types, no noise) over the
   whole run and from ``--from-day`` on, and the ratios of the self-optimizing policy to
   manual priority and to the oracle, measured side by side in this run. Both partitions of
   the policy are run ("mixture", the default, and "tree"), and the mixture with 5%
   exploration and a 5% hold-out next to the defaults (2% and 2%).
2. Speed: ``JourneyPolicy.decide`` for ``--speed-customers`` customers with 4 eligible
   campaigns each (synthetic features), after a ``learn`` on 200,000 logged decisions;
   the median of 3 runs, and ``learn`` itself.

    python benchmarks/bench_optimizer.py [--customers 20000] [--world-seed 1] [--days 112] [--from-day 56]
        [--speed-customers 500000] [--skip-simulation] [--skip-speed]
"""

import argparse
import datetime as dt
import statistics
import time

import _common  # noqa: F401  (puts the project on sys.path)
import numpy as np
import pandas as pd

from oscar_journeys.optimizer import JourneyPolicy, ManualPriorityPolicy
from oscar_journeys.simulation import OraclePolicy, RandomPolicy, World, run, synthetic_eligible, synthetic_features

START = dt.date(2025, 1, 6)


def simulation(customers, days, from_day, world_seed):
    world = World(n_customers=customers, seed=world_seed)
    policies = {
        "random": RandomPolicy(),
        "manual priority": ManualPriorityPolicy(world.campaigns),
        "self-optimizing (mixture)": JourneyPolicy(world.campaigns, world.follow_ups),
        "self-optimizing (mixture, 5%/5%)": JourneyPolicy(
            world.campaigns, world.follow_ups, exploration=0.05, holdout=0.05
        ),
        "self-optimizing (tree)": JourneyPolicy(world.campaigns, world.follow_ups, partition="tree"),
        "oracle": OraclePolicy(world),
    }
    print(f"Simulated shop: {customers:,} customers (world seed {world_seed}), {days} daily rounds from {START}; "
          f"incremental value (true, expected) of the whole run and from day {from_day} on")
    results = {}
    for name, policy in policies.items():
        began = time.perf_counter()
        result = run(world, policy, start=START, days=days)
        whole, late = result.summary(0), result.summary(from_day)
        results[name] = late["incremental_value"]
        print(f"  {name:<33} {whole['incremental_value']:>12,.0f} {late['incremental_value']:>12,.0f}"
              f"  ({late['per_decision']:.2f} per decision, {late['decisions']:,} decisions; "
              f"{time.perf_counter() - began:.1f} s)")
    manual, oracle = results["manual priority"], results["oracle"]
    for name in ("self-optimizing (mixture)", "self-optimizing (mixture, 5%/5%)", "self-optimizing (tree)"):
        print(f"  {name}: {results[name] / manual:.3f} x manual priority (target >= 1.46), "
              f"{results[name] / oracle:.1%} of the oracle (target >= 80%), from day {from_day}")


def speed(customers):
    rng = np.random.default_rng(0)
    n_campaigns = 8
    campaigns = pd.DataFrame({"campaign_id": np.arange(1, n_campaigns + 1), "priority": np.arange(n_campaigns)})
    follow_ups = pd.DataFrame({"campaign_id": [1, 2], "follow_up_id": [3, 4], "delay_days": [14, 7]})
    logged = 200_000
    features = synthetic_features(logged, seed=1).reset_index(drop=True)
    chosen = rng.integers(0, n_campaigns + 1, logged)
    outcomes = pd.DataFrame({
        "customer_id": np.arange(logged),
        "campaign_id": pd.array(np.where(chosen > 0, chosen, 0), dtype="Int64").astype("Int64"),
        "decided_at": pd.Timestamp("2025-01-01", tz="UTC"),
        "propensity": np.full(logged, 1.0 / (n_campaigns + 1)),
        "value": rng.gamma(0.3, 40.0, logged) * (rng.random(logged) < 0.2),
    })
    outcomes.loc[chosen == 0, "campaign_id"] = pd.NA
    for partition in ("mixture", "tree"):
        policy = JourneyPolicy(campaigns, follow_ups, partition=partition)
        began = time.perf_counter()
        policy.learn(outcomes, features)
        learned = time.perf_counter() - began
        eligible = synthetic_eligible(customers, 4, n_campaigns, seed=2)
        decide_features = synthetic_features(customers, seed=3)
        seconds = []
        for seed in range(3):
            began = time.perf_counter()
            decided = policy.decide(decide_features, eligible, START, seed=seed)
            seconds.append(time.perf_counter() - began)
        print(f"Speed ({partition}): learn on {logged:,} decisions {learned:.1f} s; decide {len(decided):,} customers x 4 "
              f"eligible campaigns in {statistics.median(seconds):.2f} s (median of 3: "
              f"{', '.join(f'{s:.2f}' for s in seconds)}); target <= 10 s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--world-seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=112)
    parser.add_argument("--from-day", type=int, default=56)
    parser.add_argument("--speed-customers", type=int, default=500_000)
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not args.skip_simulation:
        simulation(args.customers, args.days, args.from_day, args.world_seed)
    if not args.skip_speed:
        speed(args.speed_customers)


if __name__ == "__main__":
    main()
