"""The public catalogue: anyone reads active products, with filters and ordering."""

from __future__ import annotations

import pytest

from catalog.models import Product

from .conftest import Api, ProductFactory

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/products/"


@pytest.fixture
def shelf(make_product: ProductFactory, make_category: object) -> dict[str, Product]:
    return {
        "espresso": make_product(
            sku="COF-ESP", name="Espresso blend", price="29.00", stock=4, description="Dark roast"
        ),
        "ethiopia": make_product(
            sku="COF-ETH", name="Ethiopia beans", price="12.90", stock=0, description="Floral"
        ),
        "sencha": make_product(
            sku="TEA-SEN", name="Sencha", price="9.50", category="tea", description="Green tea, grassy"
        ),
        "kettle": make_product(
            sku="GEAR-KET", name="Kettle", price="45.00", category="gear", description="Gooseneck"
        ),
        "retired": make_product(sku="COF-OLD", name="Old roast", price="5.00", is_active=False),
    }


def names(response: object) -> list[str]:
    return [item["name"] for item in response.json()["results"]]  # type: ignore[attr-defined]


def test_list_shows_active_products_by_name_with_their_stock(
    anonymous: Api, shelf: dict[str, Product]
) -> None:
    response = anonymous.get(PRODUCTS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert (body["next"], body["previous"]) == (None, None)
    assert names(response) == ["Espresso blend", "Ethiopia beans", "Kettle", "Sencha"]
    espresso = shelf["espresso"]
    assert body["results"][0] == {
        "id": espresso.pk,
        "sku": "COF-ESP",
        "name": "Espresso blend",
        "description": "Dark roast",
        "price": "29.00",
        "currency": "EUR",
        "category": "coffee",
        "is_active": True,
        "stock": 4,
        "created_at": body["results"][0]["created_at"],
        "updated_at": body["results"][0]["updated_at"],
    }


def test_detail_of_an_active_product(anonymous: Api, shelf: dict[str, Product]) -> None:
    response = anonymous.get(f"{PRODUCTS}{shelf['sencha'].pk}/")
    assert response.status_code == 200
    assert (response.json()["sku"], response.json()["price"], response.json()["stock"]) == (
        "TEA-SEN",
        "9.50",
        10,
    )


def test_inactive_product_is_hidden_from_the_public(anonymous: Api, shelf: dict[str, Product]) -> None:
    response = anonymous.get(f"{PRODUCTS}{shelf['retired'].pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"
    assert "Old roast" not in names(anonymous.get(PRODUCTS, {"search": "old"}))


def test_staff_see_inactive_products(staff: Api, shelf: dict[str, Product]) -> None:
    assert staff.get(f"{PRODUCTS}{shelf['retired'].pk}/").json()["is_active"] is False
    assert staff.get(PRODUCTS).json()["count"] == 5


def test_unknown_product_is_404(anonymous: Api, db: None) -> None:
    response = anonymous.get(f"{PRODUCTS}999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "coffee"}, ["Espresso blend", "Ethiopia beans"]),
        ({"category": "tea"}, ["Sencha"]),
        ({"category": "nothing-here"}, []),
        ({"min_price": "12.90"}, ["Espresso blend", "Ethiopia beans", "Kettle"]),
        ({"max_price": "12.90"}, ["Ethiopia beans", "Sencha"]),
        ({"min_price": "10", "max_price": "30"}, ["Espresso blend", "Ethiopia beans"]),
        ({"search": "GRASSY"}, ["Sencha"]),
        ({"search": "cof-e"}, ["Espresso blend", "Ethiopia beans"]),
        ({"search": "kettle"}, ["Kettle"]),
        ({"search": "   "}, ["Espresso blend", "Ethiopia beans", "Kettle", "Sencha"]),
        ({"category": "coffee", "max_price": "20", "search": "beans"}, ["Ethiopia beans"]),
    ],
)
def test_filters(
    anonymous: Api, shelf: dict[str, Product], params: dict[str, str], expected: list[str]
) -> None:
    response = anonymous.get(PRODUCTS, params)
    assert response.status_code == 200
    assert names(response) == expected


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("price", ["Sencha", "Ethiopia beans", "Espresso blend", "Kettle"]),
        ("-price", ["Kettle", "Espresso blend", "Ethiopia beans", "Sencha"]),
        ("name", ["Espresso blend", "Ethiopia beans", "Kettle", "Sencha"]),
        ("-name", ["Sencha", "Kettle", "Ethiopia beans", "Espresso blend"]),
        ("created_at", ["Espresso blend", "Ethiopia beans", "Sencha", "Kettle"]),
        ("-created_at", ["Kettle", "Sencha", "Ethiopia beans", "Espresso blend"]),
    ],
)
def test_ordering(anonymous: Api, shelf: dict[str, Product], ordering: str, expected: list[str]) -> None:
    assert names(anonymous.get(PRODUCTS, {"ordering": ordering})) == expected


def test_pagination_pages_do_not_overlap(anonymous: Api, make_product: ProductFactory) -> None:
    for _ in range(5):
        make_product(price="10.00")
    first = anonymous.get(PRODUCTS, {"ordering": "price", "page_size": 2}).json()
    second = anonymous.get(PRODUCTS, {"ordering": "price", "page_size": 2, "page": 2}).json()
    third = anonymous.get(PRODUCTS, {"ordering": "price", "page_size": 2, "page": 3}).json()
    assert first["count"] == 5
    ids = [item["id"] for page in (first, second, third) for item in page["results"]]
    assert ids == sorted(Product.objects.values_list("id", flat=True))
    assert first["next"] == "http://testserver/api/products/?ordering=price&page=2&page_size=2"
    assert third["next"] is None


def test_page_beyond_the_end_is_404(anonymous: Api, shelf: dict[str, Product]) -> None:
    response = anonymous.get(PRODUCTS, {"page": 9})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_price": "cheap"}, "min_price"),
        ({"max_price": "-1"}, "max_price"),
        ({"min_price": "1.234"}, "min_price"),
        ({"min_price": "50", "max_price": "10"}, "max_price"),
        ({"ordering": "sku"}, "ordering"),
        ({"ordering": "price; DROP TABLE"}, "ordering"),
        ({"category": "not a slug!"}, "category"),
        ({"search": "x" * 101}, "search"),
    ],
)
def test_bad_filter_values_are_400_invalid_filter(
    anonymous: Api, shelf: dict[str, Product], params: dict[str, str], field: str
) -> None:
    response = anonymous.get(PRODUCTS, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_filter"
    assert list(error["details"]) == [field]


def test_categories_are_public_and_sorted_by_name(anonymous: Api, shelf: dict[str, Product]) -> None:
    response = anonymous.get(f"{PRODUCTS}categories/")
    assert response.status_code == 200
    assert [(c["slug"], c["name"]) for c in response.json()["results"]] == [
        ("coffee", "Coffee"),
        ("gear", "Gear"),
        ("tea", "Tea"),
    ]
