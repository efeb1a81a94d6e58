"""Result lists that convert to plain dicts and, when installed, to pandas or polars DataFrames.

The analytics methods of :class:`crm_core.Session` (``rfm``, ``profit``, ``forecast``, ``kpis``,
``cross_sell``, ``customer_values``, ``lifecycles``, ``export``) return :class:`Rows`, a ``list`` subclass, so
existing code keeps working while ``rows.to_dicts()``, ``rows.to_columns()`` (a list per column),
``rows.to_pandas()`` and ``rows.to_polars()`` give tabular forms. Any list of result objects,
records or dicts can be wrapped by hand: ``Rows(page.items).to_pandas()``.

The large results (``rfm``, ``profit``, ``customer_values``, ``lifecycles``) keep the library's own
result beside the list: their tabular forms are built from it column by column, and the row objects
of ``rfm``, ``profit`` and ``customer_values`` are only built when the list is first used.

Exact numbers stay exact: :class:`~decimal.Decimal` values stay ``Decimal`` in ``to_dicts()``,
become an ``object`` column of ``Decimal`` in pandas and a ``pl.Decimal`` column in polars; they
are never turned into floats behind your back (``df["revenue"].astype(float)`` if you want to).
:class:`~crm_core.Money` values are split into two columns, ``<name>`` (the ``Decimal`` amount) and
``<name>_currency`` (the ISO code), unless ``split_money=False``.

pandas and polars are optional: they are imported when a conversion is asked for, and a missing
one raises an :class:`ImportError` saying what to install.
"""

from __future__ import annotations

import functools
import gc
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Sequence, TypeVar

from crm_core._crm_core import (
    CrossSell,
    CustomerValue,
    ForecastRow,
    Kpi,
    Money,
    ProfitRow,
    Record,
    ResultTable,
    RfmRow,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as _pandas  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import polars as _polars  # type: ignore[import-not-found, unused-ignore]

__all__ = ["Rows"]

T = TypeVar("T")

# Columns of the result classes, in display order (their properties).
_COLUMNS: dict[type, tuple[str, ...]] = {
    RfmRow: (
        "account_id",
        "recency_days",
        "frequency",
        "monetary",
        "r",
        "f",
        "m",
        "segment",
        "lifecycle",
    ),
    ProfitRow: (
        "segment",
        "product_id",
        "product",
        "quantity",
        "revenue",
        "cost",
        "margin",
        "lines_without_cost",
    ),
    ForecastRow: ("month", "forecast_category", "count", "amount", "weighted"),
    # `activity_breakdown` (a list per row) stays on the objects.
    Kpi: (
        "user_id",
        "team_id",
        "users",
        "activities",
        "calls",
        "inbound_calls",
        "outbound_calls",
        "leads",
        "leads_converted",
        "leads_disqualified",
        "lead_conversion_rate",
        "opportunities_won",
        "opportunities_lost",
        "win_rate",
        "revenue_closed",
        "average_deal_size",
        "orders",
        "order_revenue",
        "open_cases",
    ),
    CrossSell: ("product_id", "because_of", "support", "confidence", "lift"),
    CustomerValue: (
        "account_id",
        "orders",
        "lifetime_value",
        "average_order_value",
        "predicted_value",
        "churn_risk",
        "csat",
        "nps",
        "survey_responses",
    ),
}

# Money-valued columns of the result classes (split into amount and currency even when None).
_MONEY: dict[type, frozenset[str]] = {
    RfmRow: frozenset({"monetary"}),
    ProfitRow: frozenset({"revenue", "cost", "margin"}),
    ForecastRow: frozenset({"amount", "weighted"}),
    Kpi: frozenset({"revenue_closed", "average_deal_size", "order_revenue"}),
    CustomerValue: frozenset({"lifetime_value", "average_order_value", "predicted_value"}),
}


def _missing(package: str, method: str) -> ImportError:
    return ImportError(
        f"Rows.{method}() needs {package}, which is not installed: "
        f"`pip install {package}` (or `pip install crm-core[dataframes]`)"
    )


class Rows(List[T]):
    """A list of results (analytics rows, records, export dicts or tuples) with tabular
    conversions. ``of`` is the item type (it names the columns of an empty list); ``columns``
    names the fields of tuple items, or selects and orders the columns of the others.

    The lists returned by ``rfm``, ``profit``, ``customer_values`` and ``lifecycles`` also keep the
    library's result: their :meth:`to_columns`, :meth:`to_dicts`, :meth:`to_pandas` and
    :meth:`to_polars` read it column by column, without reading the row objects, until the list
    is changed."""

    __slots__ = ("_of", "_columns", "_table")

    def __init__(
        self,
        items: Iterable[T] = (),
        of: Optional[type] = None,
        columns: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__(items)
        self._of = of
        self._columns: Optional[tuple[str, ...]] = tuple(columns) if columns is not None else None
        self._table: Optional[ResultTable] = None

    @staticmethod
    def _from_table(table: ResultTable, of: type, columns: Optional[Sequence[str]]) -> "Rows[Any]":
        """The list of a library result (called by the extension), its items built now: a plain
        list to every reader, C code included."""
        rows: Rows[Any] = Rows(of=of, columns=columns)
        # The row objects are new and reference nothing the collector could free: collecting while
        # they are made would only walk them, again and again as their number grows (more than half
        # the time of 90 000 rows). The collector runs again right after, as it would have.
        collecting = gc.isenabled()
        gc.disable()
        try:
            items = table.rows()
        finally:
            if collecting:
                gc.enable()
        list.extend(rows, items)
        rows._table = table
        return rows

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies and pickles hold the items, not the library's result.
        return (Rows, (list(self), self._of, self._columns))

    def __repr__(self) -> str:
        return f"Rows({list.__repr__(self)})"

    def _item_type(self) -> Optional[type]:
        if self._of is not None:
            return self._of
        return type(self[0]) if self else None

    def columns(self, *, split_money: bool = True) -> list[str]:
        """The column names of :meth:`to_dicts` (also for an empty list of a known type)."""
        if self._table is not None:
            return self._table.names(split_money)
        of = self._item_type()
        if self._columns is not None and (of is tuple or of not in _COLUMNS):
            base: Sequence[str] = self._columns
        elif of in _COLUMNS:
            assert of is not None
            base = self._columns if self._columns is not None else _COLUMNS[of]
        else:
            seen: dict[str, None] = {}
            for d in self._raw_dicts():
                for k in d:
                    seen.setdefault(k, None)
            return list(seen)
        if not split_money:
            return list(base)
        money = _MONEY.get(of, frozenset()) if of is not None else frozenset()
        out: list[str] = []
        for c in base:
            out.append(c)
            if c in money:
                out.append(f"{c}_currency")
        return out

    def _raw_dicts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in self:
            cols = _COLUMNS.get(type(item))
            if cols is not None:
                out.append({c: getattr(item, c) for c in cols})
            elif isinstance(item, dict):
                out.append(dict(item))
            elif isinstance(item, Record):
                out.append(item.to_dict())
            elif isinstance(item, tuple):
                names = self._columns or tuple(f"c{i}" for i in range(len(item)))
                out.append(dict(zip(names, item)))
            elif hasattr(item, "to_dict"):
                out.append(dict(item.to_dict()))
            else:
                raise TypeError(f"cannot tabulate a {type(item).__name__}")
        return out

    def to_columns(self, *, split_money: bool = True) -> dict[str, list[Any]]:
        """The columns of :meth:`to_dicts`, ``{name: [value of each item]}`` in the order of
        :meth:`columns` (a missing key is ``None``), with the same values and the same money
        split."""
        if self._table is not None:
            return self._table.columns(split_money)[0]
        rows = self.to_dicts(split_money=split_money)
        return {c: [r.get(c) for r in rows] for c in self.columns(split_money=split_money)}

    def to_dicts(self, *, split_money: bool = True) -> list[dict[str, Any]]:
        """One plain dict per item. ``Money`` values become ``<name>`` (``Decimal``) and
        ``<name>_currency`` (``str``) unless ``split_money=False``; ``Decimal`` stays ``Decimal``."""
        if self._table is not None:
            data = self._table.columns(split_money)[0]
            names = list(data)
            return [dict(zip(names, values)) for values in zip(*data.values())]
        of = self._item_type()
        money = _MONEY.get(of, frozenset()) if of is not None else frozenset()
        rows = self._raw_dicts()
        if self._columns is not None and of is not tuple:
            rows = [{c: d.get(c) for c in self._columns} for d in rows]
        if not split_money:
            return rows
        out: list[dict[str, Any]] = []
        for d in rows:
            e: dict[str, Any] = {}
            for k, v in d.items():
                if isinstance(v, Money):
                    e[k] = v.amount
                    e[f"{k}_currency"] = v.currency
                elif v is None and k in money:
                    e[k] = None
                    e[f"{k}_currency"] = None
                else:
                    e[k] = v
            out.append(e)
        return out

    def to_pandas(self, *, split_money: bool = True) -> "_pandas.DataFrame":
        """A pandas DataFrame (``Decimal`` columns have dtype ``object`` holding ``Decimal``s;
        datetimes become ``datetime64[ns, UTC]``). Needs pandas."""
        try:
            import pandas as pd  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError as e:
            raise _missing("pandas", "to_pandas") from e
        cols = self.columns(split_money=split_money)
        if self._table is not None:
            data = self._table.columns(split_money)[0]
            df = pd.DataFrame(data, columns=cols) if len(self) else pd.DataFrame(columns=cols)
        else:
            rows = self.to_dicts(split_money=split_money)
            df = pd.DataFrame.from_records(rows, columns=cols) if rows else pd.DataFrame(columns=cols)
            data = {c: [r.get(c) for r in rows] for c in cols}
        for c in cols:
            values = data[c]
            if values and all(isinstance(v, datetime) or v is None for v in values):
                if any(v is not None for v in values):
                    df[c] = pd.to_datetime(df[c], utc=True)
        return df

    def to_polars(self, *, split_money: bool = True) -> "_polars.DataFrame":
        """A polars DataFrame; ``Decimal`` columns become ``pl.Decimal`` with the largest scale
        found (exact), other types are inferred. Needs polars."""
        try:
            import polars as pl  # type: ignore[import-not-found, unused-ignore]
        except ImportError as e:
            raise _missing("polars", "to_polars") from e
        cols = self.columns(split_money=split_money)
        schema: dict[str, Any] = {}
        if self._table is not None:
            if not len(self):
                return pl.DataFrame({c: [] for c in cols})
            # Decimals as text, parsed by polars into the column's scale (exact, and much quicker
            # than converting `Decimal` objects).
            data, scales = self._table.columns(split_money, decimal_text=True)
            df = pl.DataFrame(data, schema_overrides={c: pl.String for c in scales}, strict=False)
            return df.with_columns(
                [pl.col(c).cast(pl.Decimal(precision=38, scale=s)) for c, s in scales.items()]
            )
        data = self.to_columns(split_money=split_money)
        for c in cols:
            values = data[c]
            decs = [v for v in values if isinstance(v, Decimal)]
            if decs and all(v is None or isinstance(v, Decimal) for v in values):
                scale = max(max(-int(v.as_tuple().exponent), 0) for v in decs)
                schema[c] = pl.Decimal(precision=38, scale=scale)
        if not len(self):
            return pl.DataFrame({c: [] for c in cols})
        return pl.DataFrame(data, schema_overrides=schema, strict=False)


# The list operations that change a list: the result table no longer describes it, so a
# table-backed list drops it (its conversions then read the items).
_CHANGING = (
    "__setitem__",
    "__delitem__",
    "__iadd__",
    "__imul__",
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
)
# The wrappers keep the list method's name, doc and signature (`functools.wraps`).


def _dropping_table(name: str) -> Callable[..., Any]:
    base = getattr(list, name)

    @functools.wraps(base)
    def method(self: Rows[Any], *args: Any, **kwargs: Any) -> Any:
        self._table = None
        return base(self, *args, **kwargs)

    return method


for _name in _CHANGING:
    setattr(Rows, _name, _dropping_table(_name))
del _name
