"""The exception hierarchy and the one mapping from core errors."""

from __future__ import annotations

import json

import pytest

import crm_core
from crm_core import _crm_core

CLASSES = {
    "validation": crm_core.ValidationError,
    "not_found": crm_core.NotFound,
    "permission_denied": crm_core.PermissionDenied,
    "conflict": crm_core.Conflict,
    "invalid_transition": crm_core.InvalidTransition,
    "invalid_query": crm_core.InvalidQuery,
    "storage": crm_core.StorageError,
    "internal": crm_core.InternalError,
}


def test_every_kind_has_a_class() -> None:
    assert {k.value for k in crm_core.ErrorKind} == set(CLASSES)
    for cls in CLASSES.values():
        assert issubclass(cls, crm_core.CrmError) and issubclass(cls, Exception)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_mapping_sets_attributes(kind: str) -> None:
    err = {"kind": kind, "message": "boom", "field": "f", "rule": "r", "action": "a", "entity": "e"}
    with pytest.raises(CLASSES[kind]) as e:
        _crm_core._raise_error(json.dumps(err))
    v = e.value
    assert (v.kind, v.message, v.field, v.rule, v.action, v.entity) == (kind, "boom", "f", "r", "a", "e")
    assert v.kind == crm_core.ErrorKind(kind)
    assert str(v).startswith(f"{kind}: boom")


def test_absent_attributes_are_none() -> None:
    err = {"kind": "internal", "message": "x", "field": None, "rule": None, "action": None, "entity": None}
    with pytest.raises(crm_core.InternalError) as e:
        _crm_core._raise_error(json.dumps(err))
    assert e.value.field is None and e.value.rule is None and e.value.action is None
    with pytest.raises(ValueError):
        _crm_core._raise_error("{}")


def test_enums() -> None:
    assert crm_core.Action.READ.value == "read" and isinstance(crm_core.Action.READ, str) and crm_core.Action("export") is crm_core.Action.EXPORT
