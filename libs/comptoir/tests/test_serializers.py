"""comptoir.ModelSerializer: DRF's ModelSerializer with the model-derived fields
built once per class; each instance still gets its own fields, as DRF builds them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from rest_framework import serializers
from testapp.models import Note

import comptoir
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


def _shelf() -> Any:
    """An object with a list of notes (what a nested serializer renders)."""
    return SimpleNamespace(
        id=3,
        created_at=datetime(2026, 12, 7, 4, 0, tzinfo=UTC),
        notes=[_note(), Note(id=8, title="Count", body="")],
    )


def test_output_is_drfs_without_building_fields_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering reads the fields of one instance built once per class: no deep copy
    per object, nested lists included, and the same data as DRF's."""
    chassis_note, drf_note = _serializer_classes()

    class ChassisShelf(ModelSerializer[Note]):
        notes = chassis_note(many=True, read_only=True)

        class Meta:
            model = Note
            fields = ("id", "created_at", "notes")

    class DrfShelf(serializers.ModelSerializer[Note]):
        notes = drf_note(many=True, read_only=True)

        class Meta:
            model = Note
            fields = ("id", "created_at", "notes")

    expected = DrfShelf(_shelf()).data
    assert ChassisShelf(_shelf()).data == expected  # its rendering fields are built here
    copies: list[object] = []
    deepcopy = copy.deepcopy

    def counting(value: Any, *args: Any) -> Any:
        copies.append(value)
        return deepcopy(value, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    outputs = [ChassisShelf(_shelf()).data for _ in range(3)]

    assert outputs == [expected] * 3
    assert expected["created_at"] == "2026-12-07T04:00:00Z"
    assert [note["id"] for note in expected["notes"]] == [7, 8]
    assert copies == []


def test_a_serializer_reading_its_context_renders_as_drf_does() -> None:
    class WithShelf(ModelSerializer[Note]):
        shelf = serializers.SerializerMethodField()

        class Meta:
            model = Note
            fields = ("id", "shelf")

        def get_shelf(self, note: Note) -> str:
            return str(self.context["shelf"])

    class Listing(ModelSerializer[Note]):
        notes = WithShelf(many=True, read_only=True)

        class Meta:
            model = Note
            fields = ("id", "notes")

    assert WithShelf(_note(), context={"shelf": "A"}).data == {"id": 7, "shelf": "A"}
    assert WithShelf(_note(), context={"shelf": "B"}).data == {"id": 7, "shelf": "B"}
    assert Listing(_shelf(), context={"shelf": "C"}).data == {
        "id": 3,
        "notes": [{"id": 7, "shelf": "C"}, {"id": 8, "shelf": "C"}],
    }


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


# --- comptoir.Serializer: declared fields copied, not built again ---------------------


def _input_classes() -> tuple[type[serializers.Serializer[Any]], type[serializers.Serializer[Any]]]:
    """The same input serializer on the chassis' class and on DRF's (nothing built yet)."""

    def declare(base: type[serializers.Serializer[Any]]) -> type[serializers.Serializer[Any]]:
        class Line(base):  # type: ignore[valid-type,misc]  # a class made at run time
            product_id = serializers.IntegerField(min_value=1)
            quantity = serializers.IntegerField(min_value=1, max_value=50)
            unit_price = serializers.DecimalField(max_digits=10, decimal_places=2, required=False)

        class Order(base):  # type: ignore[valid-type,misc]
            order_id = serializers.CharField(max_length=8)
            currency = serializers.RegexField(r"^[A-Z]{3}$", required=False)
            kind = serializers.ChoiceField(choices=["gift", "plain"], default="plain")
            lines = Line(many=True, allow_empty=False)
            tags = serializers.ListField(child=serializers.SlugField(), default=list)
            notes = serializers.JSONField(default={})

        return Order

    return declare(comptoir.Serializer), declare(serializers.Serializer)


@pytest.mark.parametrize(
    "data",
    [
        {
            "order_id": "o-1",
            "currency": "EUR",
            "lines": [{"product_id": 1, "quantity": 2, "unit_price": "2.50"}],
        },
        {"order_id": "o-2", "lines": [{"product_id": "3", "quantity": "4"}], "kind": "gift", "tags": ["a-b"]},
        {"order_id": "o-123456789", "currency": "euro", "lines": []},
        {"order_id": "o-3", "lines": [{"product_id": 0, "quantity": 51, "unit_price": "x"}], "kind": "boxed"},
        {"order_id": None, "lines": "no", "tags": ["not a slug"]},
        {},
    ],
)
def test_input_validates_as_drfs_does(data: dict[str, Any]) -> None:
    chassis, drf = _input_classes()
    ours, theirs = chassis(data=data), drf(data=data)

    assert ours.is_valid() == theirs.is_valid()
    assert ours.errors == theirs.errors
    if not theirs.errors:
        assert ours.validated_data == theirs.validated_data


def test_each_input_instance_has_fields_of_its_own_and_the_declared_stay_unbound() -> None:
    chassis, _ = _input_classes()
    first, second = chassis(data={}), chassis(data={})

    for name, declared in chassis._declared_fields.items():
        assert first.fields[name] is not declared
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first
        assert declared.field_name is None
    lines, other_lines, tags = first.fields["lines"], second.fields["lines"], first.fields["tags"]
    assert isinstance(lines, serializers.ListSerializer)
    assert isinstance(other_lines, serializers.ListSerializer)
    assert isinstance(tags, serializers.ListField)
    assert lines.child is not None
    assert lines.child is not other_lines.child
    assert lines.child.parent is lines
    tag: Any = tags.child
    assert tag.parent is tags


def test_a_mutable_default_is_not_shared_between_instances() -> None:
    chassis, _ = _input_classes()
    first, second = chassis(data={}), chassis(data={})

    assert first.fields["notes"].default == second.fields["notes"].default == {}
    assert first.fields["notes"].default is not second.fields["notes"].default
    assert first.fields["notes"].default is not chassis._declared_fields["notes"].default
