from .snapshots import Snapshot
from .sources import EventSource
from .timeline import Customer, CustomerIdentifier, CustomerMerge, Event

__all__ = [
    "Customer",
    "CustomerIdentifier",
    "CustomerMerge",
    "Event",
    "EventSource",
    "Snapshot",
]
