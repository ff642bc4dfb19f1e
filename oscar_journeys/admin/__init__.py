"""The Django admin of oscar_journeys: customers (with the customer 360 page), the
timeline, snapshots, merges and event sources; campaigns (with their report and the
template preview), channels, rules, consent and delivery; target groups, training runs and
micro-segments; journeys (drawn as a graph) and the policy's versions. See docs/admin.md."""

from . import (  # noqa: F401  (register the ModelAdmins)
    campaigns,
    channels,
    consent,
    customers,
    delivery,
    journeys,
    merges,
    rules,
    segments,
    sources,
    timeline,
)
