"""Request and response shapes. Input serializers only validate; services.py decides."""

from __future__ import annotations

from rest_framework import serializers

from comptoir import ModelSerializer, Serializer

from .models import User


class RegisterInputSerializer(Serializer[None]):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class RegisteredUserSerializer(ModelSerializer[User]):
    class Meta:
        model = User
        fields = ("id", "email", "full_name")
        read_only_fields = fields


class LoginInputSerializer(Serializer[None]):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class RefreshInputSerializer(Serializer[None]):
    refresh = serializers.CharField(max_length=200)


class TokenPairSerializer(Serializer[None]):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Lifetime of the access token, in seconds.")


class ProfileSerializer(ModelSerializer[User]):
    """The caller's own profile: only `full_name` is writable; anything else sent is ignored."""

    class Meta:
        model = User
        fields = ("id", "email", "full_name", "is_staff", "date_joined")
        read_only_fields = ("id", "email", "is_staff", "date_joined")


class ProfileUpdateSerializer(Serializer[None]):
    full_name = serializers.CharField(max_length=200, allow_blank=True, required=False)


class ServiceTokenInputSerializer(Serializer[None]):
    client_id = serializers.CharField(max_length=100)
    client_secret = serializers.CharField(max_length=256, write_only=True, trim_whitespace=False)


class ServiceTokenSerializer(Serializer[None]):
    access_token = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Lifetime of the token, in seconds.")


class InternalUserSerializer(ModelSerializer[User]):
    class Meta:
        model = User
        fields = ("id", "email", "full_name", "is_active")
        read_only_fields = fields


class JWKSerializer(Serializer[None]):
    kty = serializers.CharField()
    n = serializers.CharField()
    e = serializers.CharField()
    kid = serializers.CharField()
    alg = serializers.CharField()
    use = serializers.CharField()


class JWKSSerializer(Serializer[None]):
    keys = JWKSerializer(many=True)
