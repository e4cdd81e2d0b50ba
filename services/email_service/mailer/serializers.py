from rest_framework import serializers

from comptoir import ModelSerializer, Serializer

from .mail_templates import MailTemplate
from .models import SentEmail


class EmailRequestInputSerializer(Serializer[None]):
    # A plain string, not a choice: an unknown name is answered with the
    # `unknown_template` code rather than a generic validation error.
    template = serializers.CharField(
        max_length=64, help_text=f"One of: {', '.join(t.value for t in MailTemplate)}."
    )
    object_id = serializers.CharField(
        max_length=64,
        help_text="What the mail is about (user id, order id); the idempotency key with template.",
    )
    to = serializers.EmailField(max_length=254)
    # The metaclass moves declared fields off the class, so this does not shadow
    # Serializer.context at run time; the stubs cannot know that.
    context = serializers.DictField(  # type: ignore[assignment]
        required=False, default=dict, help_text="Values the template needs (order_id, total, reason...)."
    )


class EmailRequestOutputSerializer(Serializer[SentEmail]):
    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=SentEmail.Status.choices, read_only=True)


class EmailFilterSerializer(Serializer[None]):
    template = serializers.CharField(required=False, max_length=64)
    to = serializers.EmailField(required=False, max_length=254)
    status = serializers.ChoiceField(required=False, choices=SentEmail.Status.choices)


class EmailListSerializer(ModelSerializer[SentEmail]):
    class Meta:
        model = SentEmail
        fields = [
            "id",
            "template",
            "object_id",
            "to",
            "subject",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class EmailDetailSerializer(ModelSerializer[SentEmail]):
    class Meta:
        model = SentEmail
        fields = [*EmailListSerializer.Meta.fields, "body", "html_body", "context"]
        read_only_fields = fields


class MailLogSerializer(Serializer[None]):
    id = serializers.IntegerField()
    to = serializers.EmailField()
    subject = serializers.CharField()
    template = serializers.CharField()
    status = serializers.CharField(help_text="QUEUED, SENT or FAILED.")
    sent_at = serializers.DateTimeField(allow_null=True)
    order_id = serializers.IntegerField(allow_null=True, help_text="The order of an order mail.")


class MailLogPageSerializer(Serializer[None]):
    results = MailLogSerializer(many=True)
