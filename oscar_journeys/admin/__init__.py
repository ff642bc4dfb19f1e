"""The Django admin of oscar_journeys: customers (with the customer 360 page), the
timeline, snapshots, merges and event sources. See docs/admin.md."""

from . import customers, merges, sources, timeline  # noqa: F401  (register the ModelAdmins)
