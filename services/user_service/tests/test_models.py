import pytest

from users.models import User


@pytest.mark.django_db
def test_user_is_stored_with_a_normalised_email_and_a_hashed_password() -> None:
    user = User.objects.create_user("Ada@Example.COM", "correct horse battery")
    stored = User.objects.get(pk=user.pk)
    assert stored.email == "ada@example.com"
    assert stored.password != "correct horse battery"
    assert stored.check_password("correct horse battery")
    assert (stored.is_active, stored.is_staff) == (True, False)
