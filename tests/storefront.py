"""Drive Oscar's real storefront with Django's test client, as a shopper would."""

from django.urls import reverse

ADDRESS = {
    "first_name": "Ana",
    "last_name": "Souza",
    "line1": "1 Test Street",
    "line4": "London",
    "postcode": "N1 9GU",
    "country": "GB",
    "phone_number": "",
}


def view_product(client, product):
    response = client.get(product.get_absolute_url())
    assert response.status_code == 200, response.status_code
    return response


def add_to_basket(client, product, quantity=1):
    response = client.post(reverse("basket:add", kwargs={"pk": product.pk}), {"quantity": quantity})
    assert response.status_code == 302, response.status_code
    return response


def register(client, email, password="sup3r-s3cret-pass"):
    response = client.post(
        reverse("customer:register"),
        {"email": email, "password1": password, "password2": password, "registration_submit": "1"},
    )
    assert response.status_code == 302, response.content[:2000]
    return response


def log_in(client, email, password="sup3r-s3cret-pass"):
    response = client.post(
        reverse("customer:login"),
        {"login-username": email, "login-password": password, "login_submit": "1"},
    )
    assert response.status_code == 302, response.content[:2000]
    return response


def _follow_checkout(client):
    response = client.post(reverse("checkout:shipping-address"), ADDRESS)
    assert response.status_code == 302, response.content[:3000]
    # Shipping method and payment method pages skip themselves with one choice each.
    response = client.get(reverse("checkout:shipping-method"), follow=True)
    assert response.status_code == 200
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302, response.content[:3000]
    assert response["Location"].endswith(reverse("checkout:thank-you")), response["Location"]
    return response


def guest_checkout(client, email):
    response = client.post(
        reverse("checkout:index"), {"username": email, "options": "anonymous"}
    )
    assert response.status_code == 302, response.content[:3000]
    return _follow_checkout(client)


def user_checkout(client):
    response = client.get(reverse("checkout:index"))
    assert response.status_code == 302
    return _follow_checkout(client)


class ShopClient:
    """A test client whose requests run their on-commit callbacks (queued tasks) as a
    real commit would, inside pytest-django's per-test transaction."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if name not in ("get", "post"):
            return attr

        def call(*args, **kwargs):
            from django.test import TestCase

            with TestCase.captureOnCommitCallbacks(execute=True):
                return attr(*args, **kwargs)

        return call
