import pytest

from comptoir import ApplicationError
from mailer.mail_templates import MailTemplate, RenderedMail, mail_render, mail_template_get


def test_welcome_mail_is_text_only() -> None:
    rendered = mail_render(template=MailTemplate.WELCOME, context={"full_name": "Alice Martin"})
    assert rendered == RenderedMail(
        subject="Welcome to Comptoir, Alice Martin",
        body=(
            "Hello Alice Martin,\n\n"
            "Welcome to Comptoir! Your account is ready: browse the catalogue and place\n"
            "your first order whenever you like.\n\n"
            "— The Comptoir team\n"
        ),
        html_body="",
    )


def test_order_confirmed_lists_lines_and_total_in_text_and_html() -> None:
    rendered = mail_render(
        template=MailTemplate.ORDER_CONFIRMED,
        context={
            "order_id": 42,
            "total": "59.90",
            "currency": "EUR",
            "full_name": "Alice",
            "lines": [{"name": "Espresso cup", "quantity": 2, "line_total": "19.90"}],
        },
    )
    assert rendered.subject == "Your Comptoir order #42 is confirmed"
    assert "Good news: your order #42 is confirmed and paid." in rendered.body
    assert "  - 2 x Espresso cup: 19.90 EUR\n" in rendered.body
    assert "Total: 59.90 EUR" in rendered.body
    assert "<strong>#42</strong>" in rendered.html_body
    assert "<li>2 x Espresso cup: 19.90 EUR</li>" in rendered.html_body


def test_text_is_not_html_escaped_but_html_is() -> None:
    rendered = mail_render(
        template=MailTemplate.ORDER_CONFIRMED,
        context={"order_id": 7, "total": "1.00", "currency": "EUR", "full_name": "Tom & <Jerry>"},
    )
    assert rendered.body.startswith("Hello Tom & <Jerry>,\n")
    assert "<p>Hello Tom &amp; &lt;Jerry&gt;,</p>" in rendered.html_body


def test_subject_is_one_line_even_when_a_value_holds_newlines() -> None:
    rendered = mail_render(template=MailTemplate.WELCOME, context={"full_name": "Alice\r\nBcc: x@evil.test"})
    assert rendered.subject == "Welcome to Comptoir, Alice Bcc: x@evil.test"


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [
        ("insufficient_stock", "because one or more items are no longer in stock."),
        ("insufficient_funds", "because the payment could not be completed (insufficient funds)."),
        ("fraud_suspected", "because reason: fraud_suspected."),
    ],
)
def test_order_cancelled_explains_the_reason_code(reason: str, sentence: str) -> None:
    rendered = mail_render(template=MailTemplate.ORDER_CANCELLED, context={"order_id": "9", "reason": reason})
    assert rendered.subject == "Your Comptoir order #9 was cancelled"
    assert f"your order #9 was cancelled {sentence}" in rendered.body


@pytest.mark.parametrize(
    ("template", "context", "missing"),
    [
        (MailTemplate.WELCOME, {}, ["full_name"]),
        (MailTemplate.WELCOME, {"full_name": "  "}, ["full_name"]),
        (MailTemplate.ORDER_CONFIRMED, {"order_id": 1, "currency": "EUR"}, ["total"]),
        (MailTemplate.ORDER_CONFIRMED, {"total": None}, ["order_id", "total", "currency"]),
        (MailTemplate.ORDER_CANCELLED, {"order_id": 1}, ["reason"]),
    ],
)
def test_missing_context_names_every_missing_key(
    template: MailTemplate, context: dict[str, object], missing: list[str]
) -> None:
    with pytest.raises(ApplicationError) as caught:
        mail_render(template=template, context=context)
    assert (caught.value.code, caught.value.status_code) == ("missing_context", 400)
    assert caught.value.details == {"template": template.value, "missing": missing}


def test_unknown_template_name() -> None:
    with pytest.raises(ApplicationError) as caught:
        mail_template_get(name="password_reset")
    assert (caught.value.code, caught.value.status_code) == ("unknown_template", 400)
    assert caught.value.details == {
        "template": "password_reset",
        "known": ["welcome", "order_confirmed", "order_cancelled"],
    }
