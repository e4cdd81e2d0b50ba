from io import StringIO

import pytest
from django.core.management import call_command

from orders.models import Order


@pytest.mark.django_db
def test_seed_demo_places_no_orders() -> None:
    out = StringIO()

    call_command("seed_demo", stdout=out)

    assert out.getvalue() == "order_service: nothing to seed (orders are placed through the API).\n"
    assert Order.objects.count() == 0
