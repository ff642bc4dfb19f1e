"""Demo data for the example shop (``manage.py journeys_demo_data``).

- ``catalogue.py`` creates (or reuses) a small sportswear catalogue with Oscar's models.
- ``plan.py`` is pure: from a seed, a clock and the catalogue it plans customers and their
  history (visits, events, orders, open baskets). Same inputs, same plan.
- ``history.py`` applies a plan: Oscar users, customers through the identity service,
  real Oscar orders placed with ``OrderCreator``, open baskets, and the other events in bulk.
"""
