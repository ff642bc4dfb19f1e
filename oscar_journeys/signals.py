"""Signals that oscar_journeys sends. Connect to them to react to the timeline.

timeline_event_recorded
    Sent after the transaction that recorded an event commits.
    Arguments: ``sender`` (the Event class), ``event`` (the Event instance).

customer_merged
    Sent after two customers were merged. Arguments: ``sender`` (the CustomerMerge class),
    ``merge`` (the CustomerMerge row: ``survivor``, ``merged``, ``reason``).
"""

from django.dispatch import Signal

timeline_event_recorded = Signal()
customer_merged = Signal()
