"""DRF's `ModelSerializer`, with the fields it derives from the model built once
per class instead of once per instance; DRF's `Serializer`, with each instance's
fields copied from the declared ones instead of built again.

`rest_framework.serializers.ModelSerializer` inspects the model on every
instantiation (every request, and every object of a nested list) to build its
fields: about 110 µs for a four-field serializer on the platform's machine,
10 % of a service's request CPU in a profile of the order saga. A plain
`Serializer` instead deep-copies its declared fields (Field.__deepcopy__ builds
each field again from its arguments); this class does the same with the fields
the model gave the first instance, so each instance still gets fields of its
own, unbound, exactly as DRF would have built them (36 µs for the same
serializer). Serializers whose fields depend on the instance or its context
(a `get_fields` override reading `self.context`) must not use it.

Output skips even that copy: turning an object into data needs the fields only
to read and format (a nested order's detail deep-copied about twenty fields per
answer, a fifth of order_service's CPU per placed order). When every readable
field is of a kind whose output depends on nothing but the value (`_CONTEXT_FREE`:
no method fields, no URLs or files built from the request), `to_representation`
uses the readable fields of one instance built once per class, read-only and
shared; any other serializer renders exactly as DRF does.

    from comptoir import ModelSerializer

    class InternalUserSerializer(ModelSerializer[User]):
        class Meta:
            model = User
            fields = ("id", "email", "full_name", "is_active")

Each instance's own fields (both classes) are copies of the declared or built
ones, attribute for attribute, where DRF builds each field again from its
arguments (`Field.__deepcopy__`: its `__init__` again, its validators made
again): the field a copy is taken from is never bound or validated with, and
nothing DRF keeps on a field changes after its `__init__`, so the copy is the
field DRF would have built. Fields that hold other fields (a nested serializer,
a list's or a dict's child, bound to their parent in `__init__`) or a mutable
default are built as DRF does. Validating a reservation request (three fields
and a list of three lines) took 138 µs with DRF's copies and 85 µs with these.

    from comptoir import Serializer

    class ChargeInputSerializer(Serializer[Any]):
        order_id = serializers.CharField(max_length=64)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

_MT = TypeVar("_MT", bound=models.Model)
_T = TypeVar("_T")

# Where a class keeps its built fields (in its own __dict__: a subclass builds its own).
_PROTOTYPE = "_comptoir_model_fields"
# Where a class keeps the readable fields it renders with (None: render as DRF does).
_OUTPUT = "_comptoir_output_fields"

# Fields whose output is a function of the value alone (a list's or a dict's when its
# child's is; a nested serializer's when it is one of these whose fields all are).
_Field = serializers.Field[Any, Any, Any, Any]
# Defaults a copy must not share with the field it is copied from.
_MUTABLE = (list, dict, set, bytearray)
_CONTEXT_FREE: tuple[type[_Field], ...] = (
    serializers.BooleanField,
    serializers.CharField,
    serializers.ChoiceField,
    serializers.DateField,
    serializers.DateTimeField,
    serializers.DecimalField,
    serializers.DictField,
    serializers.DurationField,
    serializers.FloatField,
    serializers.IntegerField,
    serializers.JSONField,
    serializers.ListField,
    serializers.PrimaryKeyRelatedField,
    serializers.ReadOnlyField,
    serializers.TimeField,
    serializers.UUIDField,
)


# No docstring on purpose: drf-spectacular describes a serializer component with the
# nearest docstring of its class hierarchy short of DRF's own classes, so one here
# would describe every service's serializer that has none.
class ModelSerializer(serializers.ModelSerializer[_MT]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        cls = type(self)
        prototype: dict[str, serializers.Field[Any, Any, Any, Any]] | None = cls.__dict__.get(_PROTOTYPE)
        if prototype is None:
            # Two threads may both build it first: the same fields either way.
            prototype = super().get_fields()
            setattr(cls, _PROTOTYPE, prototype)
        return _own_fields(prototype)

    def to_representation(self, instance: _MT) -> dict[str, Any]:
        fields = _shared_output_fields(type(self))
        if fields is None:
            return super().to_representation(instance)
        # DRF's Serializer.to_representation, over the shared fields.
        data: dict[str, Any] = {}
        for name, field in fields:
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            data[name] = None if check_for_none is None else field.to_representation(attribute)
        return data


class Serializer(serializers.Serializer[_T]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return _own_fields(self._declared_fields)


def _own_fields(fields: Mapping[str, _Field]) -> dict[str, _Field]:
    """Fields of an instance's own, as DRF would build them from `fields` (never bound)."""
    return {name: _own_field(field) for name, field in fields.items()}


def _own_field(field: _Field) -> _Field:
    if _holds_fields(field) or isinstance(getattr(field, "default", None), _MUTABLE):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


def _holds_fields(field: _Field) -> bool:
    nested = isinstance(field, serializers.BaseSerializer)
    return nested or hasattr(field, "child") or hasattr(field, "child_relation")


def _shared_output_fields(cls: type[ModelSerializer[Any]]) -> tuple[tuple[str, _Field], ...] | None:
    """`_output_fields(cls)`, built on first use and kept on the class itself."""
    if _OUTPUT not in cls.__dict__:
        # Two threads may both build it first: equal field lists either way.
        setattr(cls, _OUTPUT, _output_fields(cls))
    fields: tuple[tuple[str, _Field], ...] | None = cls.__dict__[_OUTPUT]
    return fields


def _output_fields(cls: type[ModelSerializer[Any]]) -> tuple[tuple[str, _Field], ...] | None:
    """The readable fields, by name, of an instance of `cls` made for this (bound to
    it, never changed after), or None when one of them may depend on more than its value."""
    fields = tuple((name, field) for name, field in cls().fields.items() if not field.write_only)
    return fields if all(_context_free(field) for _, field in fields) else None


def _context_free(field: _Field | None) -> bool:
    if field is None:
        return False
    if isinstance(field, serializers.ListSerializer):
        return _context_free(field.child)
    if isinstance(field, ModelSerializer):
        return _shared_output_fields(type(field)) is not None
    if isinstance(field, serializers.BaseSerializer):
        return False
    if isinstance(field, serializers.ListField | serializers.DictField):
        return _context_free(field.child)
    return isinstance(field, _CONTEXT_FREE)
