"""Embeddable CRM: the Python binding of the Rust ``crm-core`` library.

Open a database with :meth:`Crm.open` (or :meth:`Crm.memory`), set up a tenant with
:meth:`Crm.bootstrap`, and act through :class:`Session` methods. Filters are dicts (the core's
serde form or ``{field: value}``) or :class:`F` expressions. Group writes that must commit
together with ``with session.transaction() as tx:`` (see :class:`Transaction`).
"""

from __future__ import annotations

import enum
from typing import Any, Iterable, Protocol

from crm_core._crm_core import (
    AccessReview,
    ActivityCount,
    AuditVerification,
    Conflict,
    Conversion,
    Crm,
    CrmError,
    CrossSell,
    CustomerValue,
    Decision,
    EmailMessage,
    Event,
    FieldChange,
    ForecastRow,
    Funnel,
    FunnelStage,
    HistoryEntry,
    HistoryPage,
    InternalError,
    InvalidQuery,
    InvalidTransition,
    Kpi,
    Money,
    NotFound,
    Page,
    PermissionDenied,
    ProfitRow,
    Record,
    RecordIterator,
    RfmRow,
    ScreenPop,
    SegmentDiff,
    Session,
    StageEntry,
    StorageError,
    Transaction,
    TransferSummary,
    ValidationError,
)
from crm_core.frames import Rows

__all__ = [
    "AccessReview",
    "Action",
    "ActivityCount",
    "AuditVerification",
    "Conflict",
    "Conversion",
    "Crm",
    "CrmError",
    "CrossSell",
    "CustomerValue",
    "Decision",
    "EmailMessage",
    "ErrorKind",
    "Event",
    "F",
    "FieldChange",
    "Filter",
    "ForecastRow",
    "Funnel",
    "FunnelStage",
    "HistoryEntry",
    "HistoryPage",
    "InternalError",
    "InvalidQuery",
    "InvalidTransition",
    "Kpi",
    "Mailer",
    "Money",
    "NotFound",
    "Page",
    "PermissionDenied",
    "ProfitRow",
    "Record",
    "RecordIterator",
    "RfmRow",
    "Rows",
    "ScreenPop",
    "SegmentDiff",
    "Session",
    "StageEntry",
    "StorageError",
    "Transaction",
    "TransferSummary",
    "ValidationError",
]


class Mailer(Protocol):
    """What :meth:`Session.deliver_emails` needs: an object whose ``send`` method delivers one
    :class:`EmailMessage`. An exception raised by ``send`` leaves the message pending."""

    def send(self, message: EmailMessage, /) -> object: ...


class Action(str, enum.Enum):
    """Something a user may do to records of an entity type."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    EXPORT = "export"
    CONFIGURE = "configure"


class ErrorKind(str, enum.Enum):
    """The ``kind`` attribute of a :class:`CrmError` (compares equal to the plain string)."""

    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"
    INVALID_TRANSITION = "invalid_transition"
    INVALID_QUERY = "invalid_query"
    STORAGE = "storage"
    INTERNAL = "internal"


def _as_dict(f: Filter | dict[str, Any]) -> dict[str, Any]:
    if isinstance(f, Filter):
        return f.to_dict()
    if isinstance(f, dict):
        return f
    raise TypeError("expected a Filter or a filter dict")


class Filter:
    """A filter expression; combine with ``&``, ``|`` and ``~``. Its :meth:`to_dict` is the core's
    serde form, which every method taking ``filter=`` accepts."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def to_dict(self) -> dict[str, Any]:
        return self._d

    def __and__(self, other: Filter | dict[str, Any]) -> Filter:
        return Filter({"op": "and", "all": [self._d, _as_dict(other)]})

    def __or__(self, other: Filter | dict[str, Any]) -> Filter:
        return Filter({"op": "or", "any": [self._d, _as_dict(other)]})

    def __invert__(self) -> Filter:
        return Filter({"op": "not", "not": self._d})

    def __repr__(self) -> str:
        return f"Filter({self._d!r})"


class F:
    """A field reference for building filters: ``F("country") == "IT"``,
    ``F("amount") > Decimal("10")``, ``F("tier").isin(["a", "b"])``."""

    __slots__ = ("field",)

    def __init__(self, field: str) -> None:
        self.field = field

    def _cmp(self, op: str, value: Any) -> Filter:
        return Filter({"op": "compare", "field": self.field, "cmp": op, "value": value})

    def __eq__(self, value: Any) -> Filter:  # type: ignore[override]
        return self._cmp("eq", value)

    def __ne__(self, value: Any) -> Filter:  # type: ignore[override]
        return self._cmp("ne", value)

    def __lt__(self, value: Any) -> Filter:
        return self._cmp("lt", value)

    def __le__(self, value: Any) -> Filter:
        return self._cmp("le", value)

    def __gt__(self, value: Any) -> Filter:
        return self._cmp("gt", value)

    def __ge__(self, value: Any) -> Filter:
        return self._cmp("ge", value)

    __hash__ = None  # type: ignore[assignment]

    def isin(self, values: Iterable[Any]) -> Filter:
        return Filter({"op": "in", "field": self.field, "values": list(values)})

    def contains(self, value: Any) -> Filter:
        return Filter({"op": "contains", "field": self.field, "value": value})

    def startswith(self, prefix: str) -> Filter:
        return Filter({"op": "starts_with", "field": self.field, "value": prefix})

    def is_null(self) -> Filter:
        return Filter({"op": "is_null", "field": self.field})

    def __repr__(self) -> str:
        return f"F({self.field!r})"
