"""comptoir.ModelSerializer: DRF's ModelSerializer with the model-derived fields
built once per class; each instance still gets its own fields, as DRF builds them."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers
from testapp.models import Note

from comptoir import ModelSerializer


def _note() -> Note:
    return Note(id=7, title="Stock check", body="Shelf 4")


def _serializer_classes() -> tuple[type[ModelSerializer[Note]], type[serializers.ModelSerializer[Note]]]:
    """A fresh pair of classes (nothing built yet): the chassis' and DRF's."""

    class ChassisNote(ModelSerializer[Note]):
        class Meta:
            model = Note
            fields = ("id", "title", "body")

    class DrfNote(serializers.ModelSerializer[Note]):
        class Meta:
            model = Note
            fields = ("id", "title", "body")

    return ChassisNote, DrfNote


def test_it_answers_what_drf_answers_and_inspects_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    chassis, drf = _serializer_classes()
    built: list[str] = []
    drf_get_fields = serializers.ModelSerializer.get_fields

    def counting(self: serializers.ModelSerializer[Any]) -> Any:
        built.append(type(self).__name__)
        return drf_get_fields(self)

    monkeypatch.setattr(serializers.ModelSerializer, "get_fields", counting)

    outputs = [chassis(_note()).data for _ in range(5)]
    many = chassis([_note(), _note()], many=True).data
    expected = [drf(_note()).data for _ in range(5)]

    assert outputs == expected
    assert list(many) == expected[:2]
    assert built.count("ChassisNote") == 1  # for 6 instances (the list's child is one)
    assert built.count("DrfNote") == 5  # DRF's: once per instance


def test_each_instance_has_fields_of_its_own_bound_to_it() -> None:
    chassis, _ = _serializer_classes()
    first, second = chassis(_note()), chassis(_note())

    assert first.fields["title"] is not second.fields["title"]
    assert first.fields["title"].parent is first
    assert second.fields["title"].parent is second


def test_validation_is_per_instance_after_the_fields_are_built() -> None:
    chassis, _ = _serializer_classes()
    too_long = chassis(data={"title": "x" * 101, "body": "b"})
    fine = chassis(data={"title": "Restock", "body": "b"})

    assert not too_long.is_valid()
    assert too_long.errors["title"][0].code == "max_length"
    assert fine.is_valid(), fine.errors
    assert fine.validated_data == {"title": "Restock", "body": "b"}


def test_a_subclass_builds_its_own_fields() -> None:
    chassis, _ = _serializer_classes()

    class TitleOnly(chassis):  # type: ignore[valid-type,misc]  # a class made at run time
        class Meta:
            model = Note
            fields = ("id", "title")

    assert chassis(_note()).data == {"id": 7, "title": "Stock check", "body": "Shelf 4"}
    assert TitleOnly(_note()).data == {"id": 7, "title": "Stock check"}
    assert chassis(_note()).data == {"id": 7, "title": "Stock check", "body": "Shelf 4"}


def test_it_lends_no_description_to_the_serializers_built_on_it() -> None:
    # drf-spectacular describes a component with the nearest docstring short of DRF's
    # classes: the chassis' class must not become every service serializer's description.
    from drf_spectacular.plumbing import get_doc

    chassis, drf = _serializer_classes()
    assert get_doc(chassis) == get_doc(drf) == ""
