"""Decision policies: given the customers' features and the campaigns each is eligible for,
choose one campaign (or nothing) per customer. Pure pandas/numpy (no Django; an
import-linter contract in setup.cfg enforces it).

Every policy has the same ``decide(features, eligible, now, seed=None)`` shape, so the
decision round can swap one for another (issue 5's self-optimizing ``JourneyPolicy``)."""

from .manual import ManualPriorityPolicy

__all__ = ["ManualPriorityPolicy"]
