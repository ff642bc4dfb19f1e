"""Decision policies: given the customers' features and the campaigns each is eligible for,
choose one campaign (or nothing) per customer. Pure pandas/numpy/scikit-learn (no Django; an
import-linter contract in setup.cfg enforces it).

Every policy has the same ``decide(features, eligible, now, seed=None)`` shape, so the
decision round can swap one for another: ``ManualPriorityPolicy`` (the owner's ranking) or
the self-optimizing ``JourneyPolicy``."""

from .manual import DECISION_COLUMNS, ManualPriorityPolicy
from .policy import JourneyPolicy

__all__ = ["DECISION_COLUMNS", "JourneyPolicy", "ManualPriorityPolicy"]
