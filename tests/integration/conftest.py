import pytest
from django.apps import apps
from oscar.test.factories import create_product

from tests.storefront import ShopClient


@pytest.fixture
def shop(client):
    return ShopClient(client)


@pytest.fixture
def country(db):
    Country = apps.get_model("address", "Country")
    return Country.objects.create(
        iso_3166_1_a2="GB", iso_3166_1_a3="GBR", iso_3166_1_numeric="826", name="United Kingdom",
        printable_name="United Kingdom", is_shipping_country=True,
    )


@pytest.fixture
def category(db):
    from oscar.apps.catalogue.categories import create_from_breadcrumbs

    return create_from_breadcrumbs("Running shoes")


@pytest.fixture
def product(db, category, country):
    product = create_product(title="Trail runner", price="45.00", num_in_stock=100, upc="TR-1")
    apps.get_model("catalogue", "ProductCategory").objects.create(product=product, category=category)
    return product
