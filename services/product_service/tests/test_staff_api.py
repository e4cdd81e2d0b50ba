"""Staff manage the catalogue; everyone else may only read it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from catalog.models import Category, Product, StockLevel

from .conftest import Api, CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/products/"
CATEGORIES = "/api/products/categories/"


@pytest.fixture
def new_product(make_category: CategoryFactory) -> dict[str, Any]:
    make_category("coffee")
    return {
        "sku": "COF-NEW-250",
        "name": "New roast",
        "description": "Bright and sweet.",
        "price": "14.50",
        "category": "coffee",
    }


def snapshot(product: Product) -> dict[str, Any]:
    row: dict[str, Any] = dict(Product.objects.values().get(pk=product.pk))
    row["stock"] = StockLevel.objects.get(product=product).quantity
    return row


# --- authorization matrix -----------------------------------------------------

WRITES: list[tuple[str, str]] = [
    ("post", PRODUCTS),
    ("put", PRODUCTS + "{product}/"),
    ("patch", PRODUCTS + "{product}/"),
    ("delete", PRODUCTS + "{product}/"),
    ("put", PRODUCTS + "{product}/stock/"),
    ("post", CATEGORIES),
    ("put", CATEGORIES + "{category}/"),
    ("patch", CATEGORIES + "{category}/"),
    ("delete", CATEGORIES + "{category}/"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("end_user", 403, "permission_denied"),
        ("order_service", 403, "permission_denied"),
    ],
)
def test_only_staff_write(
    request: pytest.FixtureRequest,
    make_product: ProductFactory,
    new_product: dict[str, Any],
    caller: str,
    status: int,
    code: str,
    method: str,
    path: str,
) -> None:
    api: Api = request.getfixturevalue(caller)
    product = make_product(stock=3)
    before = snapshot(product)
    url = path.format(product=product.pk, category=product.category_id)
    body = {**new_product, "name": "Hijacked", "quantity": 0, "slug": "hijacked"}
    response = getattr(api, method)(url) if method == "delete" else getattr(api, method)(url, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert snapshot(product) == before
    assert Product.objects.count() == 1
    assert list(Category.objects.values_list("slug", flat=True)) == ["coffee"]


@pytest.mark.parametrize("caller", ["anonymous", "end_user", "staff", "order_service"])
def test_everyone_reads(request: pytest.FixtureRequest, make_product: ProductFactory, caller: str) -> None:
    api: Api = request.getfixturevalue(caller)
    product = make_product()
    assert api.get(PRODUCTS).status_code == 200
    assert api.get(f"{PRODUCTS}{product.pk}/").status_code == 200
    assert api.get(CATEGORIES).status_code == 200
    assert api.get(f"{CATEGORIES}{product.category_id}/").status_code == 200


def test_a_bad_token_is_401_even_for_reads(client: Any, make_product: ProductFactory) -> None:
    make_product()
    response = client.get(PRODUCTS, headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


# --- products ----------------------------------------------------------------


def test_staff_create_a_product_with_empty_stock(staff: Api, new_product: dict[str, Any]) -> None:
    response = staff.post(PRODUCTS, new_product)
    assert response.status_code == 201
    body = response.json()
    product = Product.objects.get(sku="COF-NEW-250")
    assert body == {
        "id": product.pk,
        "sku": "COF-NEW-250",
        "name": "New roast",
        "description": "Bright and sweet.",
        "price": "14.50",
        "currency": "EUR",
        "category": "coffee",
        "is_active": True,
        "stock": 0,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert (product.price, product.category.slug) == (Decimal("14.50"), "coffee")
    assert StockLevel.objects.get(product=product).quantity == 0


def test_create_ignores_id_and_stock_sent_by_the_client(staff: Api, new_product: dict[str, Any]) -> None:
    response = staff.post(PRODUCTS, {**new_product, "id": 424242, "stock": 999, "created_at": "2001-01-01"})
    assert response.status_code == 201
    product = Product.objects.get(sku="COF-NEW-250")
    assert product.pk != 424242
    assert response.json()["id"] == product.pk
    assert StockLevel.objects.get(product=product).quantity == 0
    assert product.created_at.year != 2001


def test_duplicate_sku_is_409(staff: Api, make_product: ProductFactory, new_product: dict[str, Any]) -> None:
    make_product(sku="COF-NEW-250", name="First")
    response = staff.post(PRODUCTS, new_product)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "sku_taken"
    assert list(Product.objects.values_list("name", flat=True)) == ["First"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "0.00"}, "price"),
        ({"price": "-3.00"}, "price"),
        ({"price": "1.999"}, "price"),
        ({"price": "123456789.00"}, "price"),
        ({"price": "free"}, "price"),
        ({"currency": "euro"}, "currency"),
        ({"category": "no-such-category"}, "category"),
        # Not a slug: refused before the lookup (PostgreSQL cannot even compare a NUL).
        ({"category": "cof\x00fee"}, "category"),
        ({"category": "café crème"}, "category"),
        ({"category": 12}, "category"),
        ({"sku": "has spaces"}, "sku"),
        ({"sku": ""}, "sku"),
        ({"name": ""}, "name"),
    ],
)
def test_create_validation_errors(
    staff: Api, new_product: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    response = staff.post(PRODUCTS, {**new_product, **change})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]
    assert not Product.objects.exists()


def test_create_requires_the_fields(staff: Api, db: None) -> None:
    response = staff.post(PRODUCTS, {})
    assert response.status_code == 400
    assert sorted(response.json()["error"]["details"]) == ["category", "name", "price", "sku"]


def test_malformed_json_is_400_parse_error(staff: Api, db: None) -> None:
    response = staff.client.post(PRODUCTS, "{nope", content_type="application/json", headers=staff.headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_staff_patch_a_product(
    staff: Api, make_product: ProductFactory, make_category: CategoryFactory
) -> None:
    product = make_product(price="10.00", stock=6)
    make_category("tea")
    response = staff.patch(
        f"{PRODUCTS}{product.pk}/", {"price": "11.25", "category": "tea", "is_active": False}
    )
    assert response.status_code == 200
    assert (response.json()["price"], response.json()["category"], response.json()["is_active"]) == (
        "11.25",
        "tea",
        False,
    )
    assert response.json()["stock"] == 6
    product.refresh_from_db()
    assert (product.price, product.category.slug, product.is_active) == (Decimal("11.25"), "tea", False)


def test_staff_put_replaces_the_product(
    staff: Api, make_product: ProductFactory, new_product: dict[str, Any]
) -> None:
    product = make_product(description="old text", is_active=False)
    response = staff.put(f"{PRODUCTS}{product.pk}/", new_product)
    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.sku, product.name, product.description, product.is_active) == (
        "COF-NEW-250",
        "New roast",
        "Bright and sweet.",
        True,
    )


def test_put_without_required_fields_is_400_and_changes_nothing(
    staff: Api, make_product: ProductFactory
) -> None:
    product = make_product()
    before = snapshot(product)
    response = staff.put(f"{PRODUCTS}{product.pk}/", {"name": "Only a name"})
    assert response.status_code == 400
    assert sorted(response.json()["error"]["details"]) == ["category", "price", "sku"]
    assert snapshot(product) == before


def test_update_ignores_id_stock_and_timestamps(staff: Api, make_product: ProductFactory) -> None:
    product = make_product(stock=5)
    other = make_product(stock=1)
    before = snapshot(product)
    response = staff.patch(
        f"{PRODUCTS}{product.pk}/",
        {"id": other.pk, "stock": 1000, "available": 1000, "created_at": "2001-01-01T00:00:00Z"},
    )
    assert response.status_code == 200
    assert response.json()["id"] == product.pk
    assert response.json()["stock"] == 5
    after = snapshot(product)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }
    assert snapshot(other)["stock"] == 1


def test_patch_to_a_taken_sku_is_409_and_changes_nothing(staff: Api, make_product: ProductFactory) -> None:
    first = make_product(sku="A-1")
    second = make_product(sku="B-2")
    response = staff.patch(f"{PRODUCTS}{second.pk}/", {"sku": "A-1"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "sku_taken"
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["A-1", "B-2"]
    first.refresh_from_db()
    assert first.sku == "A-1"


def test_patch_with_an_invalid_price_changes_nothing(staff: Api, make_product: ProductFactory) -> None:
    product = make_product(price="10.00")
    response = staff.patch(f"{PRODUCTS}{product.pk}/", {"price": "0"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    product.refresh_from_db()
    assert product.price == Decimal("10.00")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_writes_to_an_unknown_product_are_404(staff: Api, db: None, method: str) -> None:
    url = f"{PRODUCTS}999999/"
    response = staff.delete(url) if method == "delete" else getattr(staff, method)(url, {"name": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"


def test_staff_delete_a_product_with_its_stock(staff: Api, make_product: ProductFactory) -> None:
    product = make_product(stock=3)
    response = staff.delete(f"{PRODUCTS}{product.pk}/")
    assert response.status_code == 204
    assert not Product.objects.exists()
    assert not StockLevel.objects.exists()


# --- stock -------------------------------------------------------------------


def test_staff_set_the_stock(staff: Api, anonymous: Api, make_product: ProductFactory) -> None:
    product = make_product(stock=3)
    response = staff.put(f"{PRODUCTS}{product.pk}/stock/", {"quantity": 17})
    assert response.status_code == 200
    assert response.json() == {"product_id": product.pk, "quantity": 17}
    assert StockLevel.objects.get(product=product).quantity == 17
    assert anonymous.get(f"{PRODUCTS}{product.pk}/").json()["stock"] == 17


@pytest.mark.parametrize("quantity", [-1, "lots", None, 2_147_483_648])
def test_invalid_stock_is_400_and_changes_nothing(
    staff: Api, make_product: ProductFactory, stock_of: Callable[[Product], int], quantity: Any
) -> None:
    product = make_product(stock=3)
    response = staff.put(f"{PRODUCTS}{product.pk}/stock/", {"quantity": quantity})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["details"]) == ["quantity"]
    assert stock_of(product) == 3


def test_stock_of_an_unknown_product_is_404(staff: Api, db: None) -> None:
    response = staff.put(f"{PRODUCTS}999999/stock/", {"quantity": 1})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"
    assert not StockLevel.objects.exists()


# --- categories --------------------------------------------------------------


def test_staff_create_a_category(staff: Api, db: None) -> None:
    response = staff.post(CATEGORIES, {"name": "Tea", "slug": "tea", "id": 777})
    assert response.status_code == 201
    category = Category.objects.get()
    assert response.json() == {"id": category.pk, "name": "Tea", "slug": "tea"}
    assert category.pk != 777


@pytest.mark.parametrize("body", [{"name": "Tea", "slug": "coffee"}, {"name": "Coffee", "slug": "other"}])
def test_duplicate_category_is_409(staff: Api, make_category: CategoryFactory, body: dict[str, str]) -> None:
    make_category("coffee", "Coffee")
    response = staff.post(CATEGORIES, body)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "category_taken"
    assert Category.objects.count() == 1


def test_invalid_category_slug_is_400(staff: Api, db: None) -> None:
    response = staff.post(CATEGORIES, {"name": "Tea", "slug": "Tea and more!"})
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["slug"]
    assert not Category.objects.exists()


def test_staff_rename_a_category(staff: Api, make_category: CategoryFactory) -> None:
    category = make_category("coffee", "Coffee")
    response = staff.patch(f"{CATEGORIES}{category.pk}/", {"name": "Coffee beans", "id": 5})
    assert response.status_code == 200
    assert response.json() == {"id": category.pk, "name": "Coffee beans", "slug": "coffee"}
    category.refresh_from_db()
    assert category.name == "Coffee beans"


def test_category_with_products_cannot_be_deleted(staff: Api, make_product: ProductFactory) -> None:
    product = make_product(category="coffee")
    response = staff.delete(f"{CATEGORIES}{product.category_id}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "category_in_use"
    assert Category.objects.filter(pk=product.category_id).exists()


def test_staff_delete_an_empty_category(staff: Api, make_category: CategoryFactory) -> None:
    category = make_category("empty")
    assert staff.delete(f"{CATEGORIES}{category.pk}/").status_code == 204
    assert not Category.objects.exists()


def test_unknown_category_is_404(anonymous: Api, db: None) -> None:
    response = anonymous.get(f"{CATEGORIES}999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "category_not_found"
