"""Reading time-series tables: long (one row per sample and date) and wide (one line per sample).

Both readers return a :class:`Table` of observations — sample ids, labels, coordinates and a
(sample, date, band) block with NaN for missing values — that :mod:`cropmeta.ingest.tables` turns
into a region dataset.

Empty cells and NA tokens are missing values; any other cell of a value column must be a finite
number, else the table is refused naming the column, the row and the cell (a stray text cell
must not silently drop a band or turn into a value). A long table's band columns are the
spec's ``bands``, else every column but the sample, label, date, x/y and region columns whose
cells are numbers — mostly (:data:`MOSTLY_NUMBERS`), so that a band with a bad cell is refused
rather than skipped, while text columns (names, dates, tile ids) are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from cropmeta.catalog import TableSpec
from cropmeta.errors import InputError

NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: Text that means a missing value (compared in lower case), besides empty cells.
_MISSING = {"na", "nan", "null", "?", "n/a", "#n/a", "none", "<na>"}
#: A long table's column not named as a band is one when at least this share of its present
#: cells are numbers (so it is refused for the others); below it, it is a text column, unused.
MOSTLY_NUMBERS = 0.5


def normalise_label(value: object) -> str:
    """A label as text; numbers in any spelling become canonical ("1.200e+01", "12.0" → "12")."""
    text = str(value).strip()
    if not NUMBER.match(text):
        return text
    number = float(text)
    if not np.isfinite(number):
        return text
    return str(int(number)) if number == int(number) else repr(number)


@dataclass
class Table:
    """A table's observations: per sample id, label, x/y; per observation sample, date, values."""

    ids: np.ndarray
    labels: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    obs_sample: np.ndarray
    obs_date: np.ndarray  # datetime64[D]
    obs_values: np.ndarray  # (observation, band) float32
    bands: list[str]


def _first_bad(values: list, parse) -> object | None:
    """The first of ``values`` that ``parse`` rejects, or None."""
    for value in values:
        try:
            parse(value)
        except ValueError:
            return value
    return None


def data_row(path: Path, index: int) -> str:
    """Where the 0-based data row ``index`` of a table is, as its user finds it: data rows count
    from 1; in a text file the header is line 1, so data row 1 is on line 2."""
    where = f"row {index + 1}"
    if path.suffix.lower() in {".csv", ".tsv", ".txt"}:
        where += f" (line {index + 2})"
    return where


def _present(column: pd.Series) -> pd.Series:
    """Cells that hold something: not NA, not blank and not a missing-value token."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return column.notna()
    text = column.astype(str).str.strip().str.lower()
    return column.notna() & (text != "") & ~text.isin(_MISSING)


def _numeric(path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column's values as float64: missing cells NaN, any other non-number refused."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    bad = _present(frame[column]).to_numpy() & ~np.isfinite(values)
    if bad.any():
        first = int(np.argmax(bad))
        value, where = frame[column].iloc[first], data_row(path, int(frame.index[first]))
        problem = f"column {column!r} has a non-number {str(value)!r} in {where}"
        count = int(bad.sum())
        raise InputError(path, f"{problem} ({count} such cell{'s' if count > 1 else ''})")
    return values


def _band_columns(path: Path, frame: pd.DataFrame, used: list[str], bands: list | None) -> list:
    """The spec's ``bands``, else the columns not ``used`` that hold (mostly) numbers."""
    if bands:
        return list(bands)
    chosen = []
    for name in frame.columns:
        column = frame[name]
        if name in used or pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_numeric_dtype(column):
            chosen.append(name)
        elif pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            cells = column[_present(column)]
            numbers = pd.to_numeric(cells, errors="coerce").notna()
            if len(cells) and numbers.mean() >= MOSTLY_NUMBERS:
                chosen.append(name)  # a band with some bad cells: _numeric names the first
    if not chosen:
        raise InputError(path, "no numeric band columns")
    return chosen


def read_long(path: Path, spec: TableSpec) -> Table:
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        else:
            text = {spec.label_column: str, spec.sample_column: str}
            frame = pd.read_csv(path, dtype=text, skipinitialspace=True)
        frame = frame.reset_index(drop=True)  # the index is the data row, for messages
    except pd.errors.EmptyDataError:
        raise InputError(path, "table is empty") from None
    except (ValueError, OSError) as exc:
        raise InputError(path, f"cannot read the table ({exc.__class__.__name__})") from None
    used = [spec.sample_column, spec.label_column, spec.date_column]
    used += [c for c in (spec.x_column, spec.y_column, spec.region_column) if c]
    missing = [c for c in used + list(spec.bands or []) if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}; has {list(frame.columns)}")
    if spec.region_column:
        wanted = normalise_label(spec.region_value)
        frame = frame[frame[spec.region_column].map(normalise_label) == wanted]
    if frame.empty:
        where = f" for {spec.region_column} = {spec.region_value!r}" if spec.region_column else ""
        raise InputError(path, f"table is empty{where}")
    bands = _band_columns(path, frame, used, spec.bands)
    dates = pd.to_datetime(frame[spec.date_column], format="ISO8601", errors="coerce")
    if dates.isna().any():
        first = int(np.argmax(dates.isna().to_numpy()))
        bad, where = frame[spec.date_column].iloc[first], data_row(path, int(frame.index[first]))
        raise InputError(path, f"unparseable date {bad!r} in column {spec.date_column!r}, {where}")
    codes, ids = pd.factorize(frame[spec.sample_column])
    if (codes < 0).any():
        raise InputError(path, f"{int((codes < 0).sum())} rows have no {spec.sample_column!r}")
    names = frame[spec.label_column].map(normalise_label, na_action="ignore").fillna("")
    several = names.groupby(codes).nunique().to_numpy() > 1
    if several.any():
        raise InputError(path, f"sample {ids[np.argmax(several)]!r} has more than one label")
    nan = np.full(len(ids), np.nan)
    x, y = (
        pd.Series(_numeric(path, frame, c)).groupby(codes).first().to_numpy() if c else nan
        for c in (spec.x_column, spec.y_column)
    )
    values = np.column_stack([_numeric(path, frame, b) for b in bands]).astype(np.float32)
    labels = names.groupby(codes).first().to_numpy(str)
    when = dates.to_numpy().astype("datetime64[D]")
    return Table(np.asarray(ids), labels, x, y, codes, when, values, list(bands))


def _wide_dates(path: Path, spec: TableSpec, width: int) -> np.ndarray:
    if spec.dates is not None and len(spec.dates) != width:
        raise InputError(path, f"{width} values per line but {len(spec.dates)} dates given")
    if spec.dates is None and not (spec.start_date and spec.step_days):
        raise InputError(path, "a wide table needs `dates`, or `start_date` and `step_days`")
    given = [str(d) for d in spec.dates or [spec.start_date]]
    bad = _first_bad(given, date.fromisoformat)
    if bad is not None:
        raise InputError(path, f"unparseable date {bad!r}")
    dates = np.array(given, dtype="datetime64[D]")
    if spec.dates is None:
        dates = dates[0] + np.arange(width) * np.timedelta64(spec.step_days, "D")
    return dates


def read_wide(path: Path, spec: TableSpec) -> Table:
    lines = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1)]
    lines = [(n, tokens) for n, tokens in lines if tokens]
    if not lines:
        raise InputError(path, "table is empty")
    width = len(lines[0][1]) - 1
    for n, tokens in lines:
        if len(tokens) - 1 != width or width == 0:
            raise InputError(path, f"line {n} has {len(tokens) - 1} values, line 1 has {width}")
    dates = _wide_dates(path, spec, width)
    cells = [["nan" if t.lower() in _MISSING else t for t in tokens[1:]] for _, tokens in lines]
    for (n, _), row in zip(lines, cells, strict=True):
        for j, cell in enumerate(row, 1):
            if cell != "nan" and not (NUMBER.match(cell) and np.isfinite(float(cell))):
                where = f"line {n}, column {j + 1} (value {j}, {dates[j - 1]})"
                raise InputError(path, f"{where}: {cell!r} is not a number")
    values = np.asarray(cells, dtype=np.float64)
    count = len(lines)
    return Table(
        np.array([n for n, _ in lines], np.int64),
        np.array([normalise_label(tokens[0]) for _, tokens in lines], str),
        np.full(count, np.nan), np.full(count, np.nan),
        np.repeat(np.arange(count), width), np.tile(dates, count),
        values.reshape(-1, 1).astype(np.float32), [spec.band],
    )  # fmt: skip
