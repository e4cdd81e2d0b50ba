from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from .conftest import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "page",
    [
        "/admin/catalog/category/",
        "/admin/catalog/product/",
        "/admin/catalog/product/{product}/change/",
        "/admin/catalog/stockreservation/",
    ],
)
def test_admin_pages_render(client: Client, make_product: ProductFactory, page: str) -> None:
    product = make_product()
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client.force_login(admin)
    response = client.get(page.format(product=product.pk))
    assert response.status_code == 200


def test_admin_needs_a_login(client: Client) -> None:
    response = client.get("/admin/catalog/product/")
    assert response.status_code == 302
