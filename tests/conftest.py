import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    """Cached customer ids must not outlive the test whose database rows they name."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_customer(db):
    """Create a customer through the identity service: make_customer(email=..., **profile)."""
    from oscar_journeys.services.customers import customer_create

    counter = iter(range(1, 10**6))

    def make(**kwargs):
        kwargs.setdefault("email", f"customer{next(counter)}@example.com")
        return customer_create(**kwargs)

    return make


@pytest.fixture
def source(db):
    """An active event source named "pos"; ``source.token`` is its token in clear."""
    from oscar_journeys.models import EventSource

    source = EventSource(name="pos")
    source.token = source.set_new_token()
    source.save()
    return source
