"""Reading one day of a landing dataset: formats, schema check, row rules, quarantine.

A partition folder ``landing/<dataset>/date=YYYY-MM-DD/`` holds files in any of these formats:
``*.parquet``, ``*.csv``, ``*.jsonl``, ``*.csv.gz`` and ``*.jsonl.gz``. Names starting with
``.`` or ``_`` are in-flight temporaries or markers of the producer and are skipped (and listed
in ``PartitionLoad.skipped``).

Nothing is dropped silently. Every row read ends up in exactly one of three places: loaded,
quarantined (with file, 1-based data row number, reason and the raw record as text), or
counted as an exact duplicate of an id already loaded. A file that cannot be taken as a whole
is quarantined whole (one quarantine row with ``row_number`` null and the reason) and the rest
of the partition still loads:

* unreadable, truncated or corrupt Parquet, a gzip stream that ends early, text that is not
  UTF-8, an empty file (0 bytes, or no header line);
* columns that do not match the schema: a missing or unexpected column in a CSV header or a
  Parquet schema, a column whose key no line of a JSON-lines file has, a Parquet column whose
  type cannot be converted (e.g. a naive timestamp, a float where an integer is expected);
* an unsupported file type, something that is not a regular file, or a symbolic link leading
  out of the landing zone.

The landing zone may also be a folder on object storage (any fsspec URI, see
``offline_rl.paths``): the partition is listed through the filesystem and each file's bytes are
read whole, one file at a time, then checked exactly as a local file (symbolic links exist only
locally). Errors of the store itself (a timeout, a denied request) fail the load, so the step
is retried, instead of quarantining the file.

Text files hold one record per line (UTF-8, ``\n`` or ``\r\n``); CSV has a header line,
comma separators, ``"`` quoting and empty fields for nulls; JSON lines hold one object per line
with every column as a key (null as ``null``). Row numbers count data records from 1 (the CSV
header is not a row).

Row rules (each broken rule is named in the reason, ``"; "``-joined):

* text records: blank line, malformed quoting, wrong number of fields (CSV); malformed JSON or
  not an object, missing keys (of non-optional columns) or unexpected keys, each named (JSON
  lines: a line has no header to reject, so an extra key quarantines only its line); a last
  record without a line break (the file was cut off);
* a value that does not parse as the column's type (``"abc"`` in a numeric column); text
  timestamps must be ISO 8601 with an offset (``Z``, ``+00:00`` or ``+0000``);
* null in a non-nullable column (the key included);
* the time column outside the partition's UTC day, or later than the load time plus
  ``IngestConfig.future_tolerance``;
* the behaviour probability outside (0, 1];
* NaN or infinity in a float column;
* a value outside the column's domain (``VALUE_RULES``: known categories and action ids,
  non-negative prices and quantities);
* a string longer than ``IngestConfig.max_string_length`` (UTF-8 bytes);
* an id seen earlier in the partition with different content (the first is kept).

Identical re-deliveries of an id (within a file, across files, in a later delivery) are kept
once and counted in ``duplicates``. The loaded rows are sorted by (time, key), so reading the
same files again gives the same rows in the same order.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from offline_rl.data.schemas import SourceSchema
from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import Location, RemotePath, as_location

QUARANTINE_TABLE = "quarantine"
QUARANTINE_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "partition_date": pl.Date(),
        "file": pl.String(),
        "row_number": pl.Int64(),
        "reason": pl.String(),
        "record": pl.String(),
    }
)

FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
}
"""Landing file suffix -> format."""

_PARTITION_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QUOTED_FIELD = r'"[^"]*(?:""[^"]*)*"'
_JSON_KEY = r'[{,]\s*"(?:[^"\\]|\\.)*"\s*:'
_JSON_KEY_EDGES = r'^[{,]\s*"|"\s*:$'
_TRUE_FALSE = {"true": True, "false": False}
_ENGINE: Final = "in-memory"
"""Engine of the partition queries: a day fits in memory, and on a 1M-event day the
in-memory engine sorts several times faster than the streaming one."""


@dataclass(frozen=True)
class IngestConfig:
    """Limits of the landing contract.

    Attributes:
        max_string_length: Longest accepted string value, in UTF-8 bytes; a row with a longer
            value is quarantined.
        max_record_chars: Characters of the raw record kept in the quarantine table (longer
            records are cut and marked with their full length).
        future_tolerance: A row whose time is later than the load time plus this is
            quarantined as being in the future (clock skew of producers stays within it).
        now: Load time used for the future check; None means the current UTC time.
    """

    max_string_length: int = 10_000
    max_record_chars: int = 20_000
    future_tolerance: dt.timedelta = dt.timedelta(days=1)
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.max_string_length < 1 or self.max_record_chars < 64:
            raise ValueError("max_string_length must be >= 1 and max_record_chars >= 64")
        if self.future_tolerance < dt.timedelta(0):
            raise ValueError("future_tolerance must not be negative")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("IngestConfig.now must be timezone-aware")


@dataclass(frozen=True)
class ValueRule:
    """Allowed values of a landing column beyond its type (nulls are left to ``nullable``).

    Attributes:
        allowed: The value must be one of these (categories, action ids), or None.
        minimum: Inclusive lower bound, or None.
        maximum: Inclusive upper bound, or None.
    """

    allowed: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def violated(self, column: str) -> pl.Expr:
        """True where a non-null value breaks the rule."""
        c = pl.col(column)
        bad = pl.lit(False)
        if self.allowed is not None:
            bad = bad | ~c.is_in(list(self.allowed))
        if self.minimum is not None:
            bad = bad | (c < self.minimum)
        if self.maximum is not None:
            bad = bad | (c > self.maximum)
        return c.is_not_null() & bad

    def allowed_text(self) -> str:
        """The values the rule accepts, for the schema doc, e.g. ``one of a, b`` or ``>= 0``."""
        if self.allowed is not None:
            return "one of " + ", ".join(str(v) for v in self.allowed)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f">= {self.minimum:g}"
        return f"<= {self.maximum:g}"

    def describe(self) -> str:
        """What a violating value is, e.g. ``is negative`` or ``is not one of a, b``."""
        if self.allowed is not None:
            return "is not one of " + ", ".join(str(v) for v in self.allowed)
        if self.minimum is not None and self.maximum is not None:
            return f"is not in [{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return "is negative" if self.minimum == 0 else f"is below {self.minimum:g}"
        return f"is above {self.maximum:g}"


def _non_negative(*columns: str) -> dict[str, ValueRule]:
    return {c: ValueRule(minimum=0) for c in columns}


def _ids(n: int) -> ValueRule:
    return ValueRule(allowed=tuple(range(n)))


_CATEGORY_NAMES = ("electronics", "home", "fashion", "beauty", "sports", "toys")
_DEVICES = ValueRule(allowed=("mobile", "desktop"))
_CATEGORY = _ids(len(_CATEGORY_NAMES))

VALUE_RULES: dict[str, dict[str, ValueRule]] = {
    "clickstream": {
        "event_type": ValueRule(allowed=("page_view", "impression", "click", "purchase")),
        "device": _DEVICES,
        "category_id": _CATEGORY,
        **_non_negative("user_segment", "page", "slot", "price"),
    },
    "cart": {
        "event_type": ValueRule(allowed=("visit", "offer", "checkout", "abandon")),
        "device": _DEVICES,
        "action": _ids(4),
        "offer": ValueRule(allowed=("none", "coupon_5", "coupon_15", "free_shipping")),
        **_non_negative("user_segment", "visit", "n_items", "cart_value", "revenue",
                        "incentive_cost"),
    },
    "inventory_snapshots": {
        "category_id": _CATEGORY,
        **_non_negative("location_id", "day_index", "stock_start", "arrivals", "on_order",
                        "demand", "sales", "lost_sales", "stock_end", "capacity", "unit_price",
                        "unit_cost", "holding_cost", "stockout_cost"),
    },
    "inventory_orders": {
        "category_id": _CATEGORY,
        "action": _ids(6),
        "action_mask": ValueRule(minimum=1, maximum=2**6 - 1),
        "planning_days": ValueRule(minimum=1),
        **_non_negative("location_id", "day_index", "order_multiple", "quantity",
                        "demand_7d_mean", "stock_on_hand", "capacity", "lead_time_days",
                        "ordering_cost"),
    },
    "ads": {
        "vertical": ValueRule(allowed=_CATEGORY_NAMES),
        "action": _ids(5),
        "hour": ValueRule(minimum=0, maximum=23),
        "end_hour": ValueRule(minimum=1, maximum=24),
        "traffic_share_elapsed": ValueRule(minimum=0, maximum=1),
        **_non_negative("bid_multiplier", "bid", "daily_budget", "planned_spend",
                        "impressions", "clicks", "conversions", "spend"),
    },
    "pricing_changes": {
        "category_id": _CATEGORY,
        "action": _ids(5),
        **_non_negative("market_id", "day_index", "price_multiplier", "list_price", "price",
                        "unit_cost", "competitor_price", "stock", "season_days"),
    },
    "pricing_sales": {
        "category_id": _CATEGORY,
        **_non_negative("market_id", "day_index", "price", "units_sold", "revenue",
                        "stock_end"),
    },
}
"""Column domains the schemas describe only in words, by dataset and column: categories and
action ids (the decision domains' action counts), and columns that cannot be negative (prices,
quantities, costs, counts). ``value_rules`` checks that every named column exists."""


def value_rules(schema: SourceSchema) -> dict[str, ValueRule]:
    """The value rules of a dataset (``ValueError`` if one names a column it lacks)."""
    rules = VALUE_RULES.get(schema.name, {})
    unknown = [c for c in rules if c not in schema.polars_schema]
    if unknown:
        raise ValueError(f"value rules of {schema.name} name unknown column(s) "
                         f"{', '.join(unknown)}")
    return rules


@dataclass(frozen=True)
class PartitionLoad:
    """What reading one landing partition produced.

    Attributes:
        rows: Valid rows with lineage columns ``_source_file`` and ``_source_row`` (1-based
            data row of the file), sorted by (time, key), ready to load.
        quarantine: Rejected rows and files, in the ``quarantine`` table's schema.
        files: Landing files of the partition (rejected ones included).
        rows_read: Data rows read from files that were not rejected whole.
        duplicates: Rows dropped as exact copies of a row already kept in this partition.
        skipped: Names skipped as temporaries or markers (starting with ``.`` or ``_``).
    """

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    files: list[str]
    rows_read: int
    duplicates: int
    skipped: list[str] = field(default_factory=list)

    @property
    def rejected_files(self) -> int:
        """Files quarantined whole (their quarantine row has no row number)."""
        return self.quarantine.filter(pl.col("row_number").is_null()).height

    @property
    def quarantined_rows(self) -> int:
        return self.quarantine.height - self.rejected_files

    @property
    def reconciled(self) -> bool:
        """read = loaded + quarantined rows + duplicates dropped."""
        return self.rows_read == self.rows.height + self.quarantined_rows + self.duplicates

    @property
    def empty(self) -> bool:
        """No landing file at all (an empty partition loads nothing; it is not an error)."""
        return not self.files

    def summary(self) -> dict[str, int]:
        return {"files": len(self.files), "rows_read": self.rows_read,
                "rows_loaded": self.rows.height, "rows_quarantined": self.quarantined_rows,
                "duplicates_dropped": self.duplicates, "files_rejected": self.rejected_files}

    def describe(self) -> str:
        """One line for logs and reports."""
        if self.empty:
            return "no landing files: nothing loaded"
        s = self.summary()
        text = (f"{s['files']} file(s), {s['rows_read']} rows read: {s['rows_loaded']} loaded, "
                f"{s['rows_quarantined']} quarantined, {s['duplicates_dropped']} duplicates "
                f"dropped, {s['files_rejected']} file(s) rejected")
        return text if self.reconciled else text + " (NOT RECONCILED)"


class _Rejected(Exception):
    """A landing file that is quarantined whole; the message is the reason."""


def parse_partition_key(key: str) -> dt.date:
    """The date of a partition key ``YYYY-MM-DD`` (``ValueError`` naming the key otherwise)."""
    if not isinstance(key, str) or not _PARTITION_KEY.match(key):
        raise ValueError(f"invalid partition key {key!r}: expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"invalid partition key {key!r}: not a calendar date") from None


def partition_folder(landing: Location | str, schema: SourceSchema, day: dt.date) -> Location:
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValueError(f"partition day must be a date, got {day!r}")
    return as_location(landing) / schema.name / f"date={day:%Y-%m-%d}"


def landing_format(name: str) -> str | None:
    """The format of a landing file name (None if unsupported)."""
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return FORMATS[suffix]
    return None


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _join_reasons(reasons: list[pl.Expr]) -> pl.Expr:
    """The non-null reasons joined with ``"; "``, null if there are none."""
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def duration_text(delta: dt.timedelta) -> str:
    """``delta`` in words, e.g. ``1 day`` (row reasons and the schema doc)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{delta.total_seconds():g} seconds"


def _cut_record(expr: pl.Expr, limit: int) -> pl.Expr:
    n = expr.str.len_chars()
    return pl.when(n > limit).then(pl.format(
        "{}...[record cut: {} characters]", expr.str.head(limit), n)).otherwise(expr)


# ---------------------------------------------------------------- reading files

def _read_bytes(path: Location, gzipped: bool) -> bytes:
    data = path.read_bytes()
    if not data:
        raise _Rejected("empty file (0 bytes)")
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise _Rejected(f"corrupt or truncated gzip: {_one_line(exc)}") from None
    return data


def _lines(data: bytes) -> tuple[pl.Series, bool, bytes]:
    """The text's lines (CR of CRLF removed), whether the last one ends with a line break, and
    the text's bytes without a byte-order mark."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark some spreadsheet exports add
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Rejected(f"not UTF-8 text (byte {exc.start})") from None
    if not text:
        raise _Rejected("empty file (no content)")
    terminated = text.endswith("\n")
    # str.split is C code and here 2-3x faster than splitting inside polars
    lines = pl.Series("line", (text[:-1] if terminated else text).split("\n"), pl.String)
    return lines.str.strip_suffix("\r"), terminated, data


def _text_problems(base: pl.Expr, terminated: bool, n_lines: int) -> pl.Expr:
    """Reason of the record-level problems a line has beyond ``base`` (null if none)."""
    if terminated:
        return base
    last = pl.int_range(pl.len()) == n_lines - 1
    cut = pl.when(last).then(pl.lit("truncated record (no line break at the end of the file)"))
    return _join_reasons([cut, base])


def _read_csv(data: bytes, schema: SourceSchema) -> pl.DataFrame:
    lines, terminated, _ = _lines(data)
    if not terminated and lines.len() == 1:
        raise _Rejected("truncated header (no line break after it)")
    try:
        header = pl.read_csv(io.StringIO(lines[0] + "\n"), has_header=False,
                             infer_schema=False).row(0)
    except Exception as exc:
        raise _Rejected(f"unreadable CSV header: {_one_line(exc)}") from None
    names = [str(h) if h is not None else "" for h in header]
    _check_columns(names, schema, what="column")
    n = len(names)
    body = lines.slice(1).to_frame("_record").with_columns(
        _source_row=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    stripped = pl.col("_record").str.replace_all(_QUOTED_FIELD, "")
    fields = stripped.str.count_matches(",", literal=True) + 1
    structure = (
        pl.when(pl.col("_record").str.strip_chars() == "").then(pl.lit("empty line"))
        .when(stripped.str.contains('"', literal=True)).then(pl.lit("malformed quoting"))
        .when(fields != n).then(pl.format(f"expected {n} fields, found {{}}", fields))
    )
    body = body.with_columns(_parse=_text_problems(structure, terminated, body.height))
    ok = body.filter(pl.col("_parse").is_null())
    if ok.height:
        payload = ok["_record"].str.join("\n").item() + "\n"
        try:
            parsed = pl.read_csv(io.StringIO(payload), has_header=False, new_columns=names,
                                 schema=dict.fromkeys(names, pl.String()), quote_char='"')
        except Exception as exc:
            raise _Rejected(f"unparsable CSV: {_one_line(exc)}") from None
        if parsed.height != ok.height:
            raise _Rejected(f"unparsable CSV: {ok.height} well-formed lines gave "
                            f"{parsed.height} records")
    else:
        parsed = pl.DataFrame(schema=dict.fromkeys(names, pl.String()))
    good = pl.concat([ok.select("_source_row", "_record", "_parse"), parsed],
                     how="horizontal")
    bad = body.filter(pl.col("_parse").is_not_null())
    return _concat_text(good, bad, schema)


def _read_jsonl(data: bytes, schema: SourceSchema) -> pl.DataFrame:
    lines, terminated, payload = _lines(data)
    names = schema.polars_schema.names()
    strings = dict.fromkeys(names, pl.String())
    body = lines.to_frame("_record").with_columns(
        _source_row=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        _keys=pl.col("_record").str.extract_all(_JSON_KEY).list.eval(
            pl.element().str.replace_all(_JSON_KEY_EDGES, "")),
    )
    # fast path: polars' NDJSON reader takes the whole file when every line is an object (it
    # skips blank lines, so the row count must match); values are read as their JSON text
    everything = None
    if terminated:
        try:
            everything = pl.read_ndjson(io.BytesIO(payload), schema=strings)
        except Exception:
            everything = None
        if everything is not None and everything.height != body.height:
            everything = None
    if everything is None:
        body = body.with_columns(_json=pl.col("_record").str.json_path_match("$"))
        valid = pl.col("_json").is_not_null()
        is_object = pl.col("_json").str.starts_with("{").fill_null(False)
    else:
        valid = is_object = pl.lit(True)
    seen = body.filter(is_object)["_keys"].explode().drop_nulls().unique().to_list()
    if seen:
        # a JSON-lines file has no header: a column is missing from the file only when no line
        # has its key (file-level); a key no column has is a problem of the lines that carry it
        _check_columns([k for k in names if k in seen], schema, what="key")
    missing = pl.concat_str(
        [pl.when(~pl.col("_keys").list.contains(c)).then(pl.lit(c)) for c in names
         if c not in schema.optional],
        separator=", ", ignore_nulls=True)
    unexpected = pl.col("_keys").list.eval(
        pl.element().filter(~pl.element().is_in(names)).unique(maintain_order=True)
    ).list.join(", ")
    keys = _join_reasons([
        pl.when(missing != "").then(pl.format("missing key(s) {}", missing)),
        pl.when(unexpected != "").then(pl.format("unexpected key(s) {}", unexpected)),
    ])
    structure = (
        pl.when(pl.col("_record").str.strip_chars() == "").then(pl.lit("empty line"))
        .when(~valid).then(pl.lit("malformed JSON"))
        .when(~is_object).then(pl.lit("not a JSON object"))
        .when(keys.is_not_null()).then(keys)
    )
    body = body.with_columns(_parse=_text_problems(structure, terminated, body.height))
    keep = body["_parse"].is_null()
    ok = body.filter(keep)
    if everything is not None:
        decoded = everything.filter(keep)
    else:
        # the raw text, not the normalised form, which would round long decimal numbers
        try:
            decoded = ok.select(pl.col("_record").str.json_decode(pl.Struct(strings))
                                .struct.unnest())
        except Exception as exc:
            raise _Rejected(f"unparsable JSON lines: {_one_line(exc)}") from None
    good = pl.concat([ok.select("_source_row", "_record", "_parse"), decoded],
                     how="horizontal")
    bad = body.filter(pl.col("_parse").is_not_null())
    return _concat_text(good, bad, schema)


def _concat_text(good: pl.DataFrame, bad: pl.DataFrame, schema: SourceSchema) -> pl.DataFrame:
    """Good records typed (with parse problems), bad ones with null values, in row order."""
    typed = _typed(good, schema, {c: pl.String() for c in schema.polars_schema.names()}
                   ).with_columns(_unparsed=pl.lit(False))
    bad = bad.select("_source_row", "_record", "_parse").with_columns(
        [pl.lit(None, dtype).alias(c) for c, dtype in schema.polars_schema.items()]
    ).with_columns(_unparsed=pl.lit(True))
    return pl.concat([typed, bad.select(typed.columns)]).sort("_source_row")


def _check_columns(names: list[str], schema: SourceSchema, *, what: str) -> None:
    expected = schema.polars_schema.names()
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _Rejected(f"duplicate {what}(s) {', '.join(dupes)}")
    missing = [c for c in expected if c not in names and c not in schema.optional]
    if missing:
        raise _Rejected(f"missing {what}(s) {', '.join(missing)}")
    extra = [c for c in names if c not in expected]
    if extra:
        raise _Rejected(f"unexpected {what}(s) {', '.join(extra)}")


def _read_parquet(path: Location, schema: SourceSchema) -> pl.DataFrame:
    source: Path | io.BytesIO
    if isinstance(path, RemotePath):
        source = io.BytesIO(path.read_bytes())  # one file in memory, read in one request
        empty = not source.getbuffer().nbytes
    else:
        source, empty = path, path.stat().st_size == 0
    if empty:
        raise _Rejected("empty file (0 bytes)")
    try:
        frame = pl.read_parquet(source)
    except Exception as exc:
        raise _Rejected(f"unreadable parquet: {type(exc).__name__}: {_one_line(exc)}") from None
    _check_columns(frame.columns, schema, what="column")
    frame = frame.with_columns(_source_row=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
                               _record=pl.lit(None, pl.String), _parse=pl.lit(None, pl.String))
    return _typed(frame, schema, frame.schema).with_columns(_unparsed=pl.lit(False))


def _convertible(got: pl.DataType, want: pl.DataType) -> bool:
    """Whether a Parquet column of type ``got`` converts to ``want`` without losing values
    (conversions that can fail, such as integer overflow, are checked row by row)."""
    if got == want or got == pl.String():
        return True
    if isinstance(want, pl.Datetime):
        return isinstance(got, pl.Datetime) and got.time_zone == "UTC"
    if want.is_integer():
        return got.is_integer()
    if want.is_float():
        return got.is_float() or got.is_integer()
    return False


def _parse_string(column: str, want: pl.DataType) -> pl.Expr:
    raw = pl.col(column)
    if want == pl.String():
        return raw
    if isinstance(want, pl.Datetime):
        iso = raw.str.strip_chars().str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
        return iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us",
                                   time_zone="UTC", strict=False)
    if want == pl.Date():
        return raw.str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    if want == pl.Boolean():
        return raw.str.strip_chars().str.to_lowercase().replace_strict(
            _TRUE_FALSE, default=None, return_dtype=pl.Boolean)
    return raw.cast(want, strict=False)


def _typed(frame: pl.DataFrame, schema: SourceSchema, got: Mapping[str, pl.DataType]
           ) -> pl.DataFrame:
    """``frame`` with every schema column converted to its type; values that do not convert
    become null and are named in ``_parse``. Raises ``_Rejected`` for unconvertible types."""
    absent = [c for c in schema.optional if c not in frame.columns]
    if absent:  # optional columns a file leaves out read as null
        frame = frame.with_columns(pl.lit(None, schema.polars_schema[c]).alias(c)
                                   for c in absent)
        got = {**got, **{c: schema.polars_schema[c] for c in absent}}
    exprs, failures = [], []
    for name, want in schema.polars_schema.items():
        have = got[name]
        if have == want:
            continue
        if not _convertible(have, want):
            raise _Rejected(f"column {name} has type {have}, expected {want}")
        converted = (_parse_string(name, want) if have == pl.String()
                     else pl.col(name).cast(want, strict=False))
        exprs.append(converted.alias(name))
        shown = pl.col(name).cast(pl.String).str.head(80)
        failures.append(pl.when(pl.col(name).is_not_null() & converted.is_null()).then(
            pl.format(f"column {name}: cannot read '{{}}' as {want}", shown)))
    if not exprs:
        return frame.select(*schema.polars_schema.names(), "_source_row", "_record", "_parse")
    return frame.with_columns(
        _parse=_join_reasons([pl.col("_parse"), *failures]),
    ).with_columns(exprs).select(*schema.polars_schema.names(), "_source_row", "_record",
                                 "_parse")


def _read_file(path: Location, fmt: str, schema: SourceSchema) -> pl.DataFrame:
    """Schema columns typed, ``_source_row``, ``_record`` (raw text records), ``_parse``
    (problems found while reading) and ``_unparsed`` (the record gave no values)."""
    if fmt == "parquet":
        return _read_parquet(path, schema)
    data = _read_bytes(path, gzipped=path.name.endswith(".gz"))
    return _read_csv(data, schema) if fmt == "csv" else _read_jsonl(data, schema)


# ---------------------------------------------------------------- row rules

def _rules(schema: SourceSchema, day: dt.date, config: IngestConfig
           ) -> list[tuple[pl.Expr, pl.Expr]]:
    """(broken, reason) expression pairs of every row rule."""
    rules: list[tuple[pl.Expr, pl.Expr]] = []
    for c in schema.required:
        rules.append((pl.col(c).is_null(), pl.lit(f"null {c}")))
    ts = pl.col(schema.time_column)
    now = config.now or dt.datetime.now(dt.UTC)
    horizon = now + config.future_tolerance
    shown_ts = ts.dt.to_string("%Y-%m-%dT%H:%M:%S")
    rules.append((ts > horizon, pl.format(
        # no load time in the text: reloading the same files must give the same rows
        f"{schema.time_column} {{}} is in the future (beyond the load time plus "
        f"{duration_text(config.future_tolerance)})",
        shown_ts)))
    rules.append(((ts <= horizon) & (ts.dt.date() != day), pl.format(
        f"{schema.time_column} {{}} outside partition {day:%Y-%m-%d}", shown_ts)))
    if schema.probability_column:
        p = pl.col(schema.probability_column)
        rules.append((~((p > 0) & (p <= 1)) & ~p.is_nan(), pl.format(
            f"{schema.probability_column} {{}} outside (0, 1]", p)))
    for name, dtype in schema.polars_schema.items():
        col = pl.col(name)
        if dtype.is_float():
            rules.append((~col.is_finite(), pl.format(f"non-finite {name} {{}}", col)))
        elif dtype == pl.String():
            rules.append((col.str.len_bytes() > config.max_string_length, pl.format(
                f"{name} longer than {config.max_string_length} bytes ({{}})",
                col.str.len_bytes())))
    for name, rule in value_rules(schema).items():
        rules.append((rule.violated(name),
                      pl.format(f"{name} {{}} {rule.describe()}", pl.col(name))))
    return [(broken.fill_null(False), reason) for broken, reason in rules]


def row_problems(schema: SourceSchema, day: dt.date, config: IngestConfig | None = None
                 ) -> pl.Expr:
    """A string expression naming every rule a row breaks ("; "-joined), null if none."""
    rules = _rules(schema, day, config or IngestConfig())
    return _join_reasons([pl.when(b).then(r) for b, r in rules])


# ---------------------------------------------------------------- the partition

def _relative(path: Location, landing: Location) -> str:
    """``path``'s name inside the landing zone ``landing`` (both local or both remote)."""
    if isinstance(path, Path) and isinstance(landing, Path):
        return path.relative_to(landing).as_posix()
    if isinstance(path, RemotePath) and isinstance(landing, RemotePath):
        return path.relative_to(landing).as_posix()
    raise TypeError(f"{path} and the landing zone {landing} are not on one filesystem")


def _landing_entries(folder: Location, root: Path | None
                     ) -> tuple[list[Location], list[str]]:
    """Files of the folder (sorted by name) and the names skipped as temporaries/markers;
    ``root`` is the resolved local landing zone (None on object storage)."""
    if root is not None and isinstance(folder, Path) \
            and not folder.resolve().is_relative_to(root):
        raise ValueError(f"partition folder {folder} leads outside the landing zone {root}")
    if not folder.is_dir():
        return [], []
    entries: list[Location] = sorted(folder.iterdir(), key=lambda p: p.name)
    files = [p for p in entries if not p.name.startswith((".", "_"))]
    skipped = [p.name for p in entries if p.name.startswith((".", "_"))]
    return files, skipped


def _file_rejection(path: Location, root: Path | None) -> str | None:
    """Why a listed entry cannot be a landing file (None if it can); ``root`` is the resolved
    local landing zone (None on object storage, which has no symbolic links)."""
    if root is not None and isinstance(path, Path) and path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            return "symbolic link to a location outside the landing zone"
    if not path.is_file():
        return "not a regular file"
    if landing_format(path.name) is None:
        return ("unsupported file type (expected " + ", ".join(f"*{s}" for s in FORMATS)
                + ")")
    return None


def _rejected_row(schema: SourceSchema, day: dt.date, rel: str, reason: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source": [schema.name], "partition_date": [day], "file": [rel], "row_number": [None],
         "reason": [f"file rejected: {reason}"], "record": [None]},
        schema=QUARANTINE_SCHEMA,
    )


def _quarantine_rows(frame: pl.DataFrame, schema: SourceSchema, day: dt.date, reason: pl.Expr,
                     config: IngestConfig) -> pl.DataFrame:
    """Rows of ``frame`` as quarantine rows; the record is the raw text record, or the row as
    JSON for Parquet."""
    as_json = pl.struct(schema.polars_schema.names()).struct.json_encode()
    return frame.select(
        source=pl.lit(schema.name), partition_date=pl.lit(day, dtype=pl.Date),
        file="_source_file", row_number="_source_row", reason=reason,
        record=_cut_record(pl.coalesce("_record", as_json), config.max_record_chars),
    )


def read_partition(
    landing: Location | str, schema: SourceSchema, day: dt.date,
    config: IngestConfig | None = None,
) -> PartitionLoad:
    """Reads ``landing/<dataset>/date=<day>/`` and splits good rows from bad (see the module
    docstring for every rule). ``landing`` is a local folder or a ``RemotePath`` / fsspec URI."""
    config = config or IngestConfig()
    landing = as_location(landing)
    root = landing.resolve() if isinstance(landing, Path) else None  # None: object storage
    folder = partition_folder(landing, schema, day)
    files, skipped = _landing_entries(folder, root)
    frames: list[pl.DataFrame] = []
    quarantined: list[pl.DataFrame] = []
    for path in files:
        # the file's name inside the landing zone, the same wherever the zone lives
        rel = _relative(path, landing)
        try:
            reason = _file_rejection(path, root)
            if reason is not None:
                raise _Rejected(reason)
            frame = _read_file(path, landing_format(path.name) or "", schema)
        except _Rejected as exc:
            quarantined.append(_rejected_row(schema, day, rel, str(exc)))
            continue
        except OSError as exc:
            if root is None:  # the store failed, not the file: fail the load (step retries)
                raise
            quarantined.append(_rejected_row(schema, day, rel,
                                             f"unreadable: {_one_line(exc)}"))
            continue
        frames.append(frame.with_columns(_source_file=pl.lit(rel)))

    columns = [*schema.polars_schema.names(), "_source_file", "_source_row"]
    if frames:
        # one contiguous frame: some string kernels mishandle chunked constant columns
        everything = pl.concat(frames, rechunk=True)
    else:
        everything = pl.DataFrame(schema={**schema.polars_schema, "_source_row": pl.Int64(),
                                          "_record": pl.String(), "_parse": pl.String(),
                                          "_unparsed": pl.Boolean(),
                                          "_source_file": pl.String()})
    rows_read = everything.height
    rules = _rules(schema, day, config)
    broken = pl.any_horizontal(pl.col("_parse").is_not_null(), *[b for b, _ in rules])
    row_reason = pl.when(pl.col("_unparsed")).then(pl.col("_parse")).otherwise(
        _join_reasons([pl.col("_parse"), *[pl.when(b).then(r) for b, r in rules]]))
    lazy = everything.lazy().with_columns(_broken=broken)
    bad, good = pl.collect_all([
        lazy.filter(pl.col("_broken")),
        lazy.filter(~pl.col("_broken")).select(*columns, "_record"),
    ], engine=_ENGINE)
    if bad.height:
        quarantined.append(_quarantine_rows(bad, schema, day, row_reason, config))

    good, conflicting, duplicates = _drop_duplicates(good, schema)
    if conflicting.height:
        first = pl.format("duplicate {} {} with different content (kept {} row {})",
                          pl.lit(schema.key), pl.col(schema.key), pl.col("_kept_file"),
                          pl.col("_kept_row"))
        quarantined.append(_quarantine_rows(conflicting, schema, day, first, config))
    rows = good.lazy().select(columns).with_columns(
        partition_date=pl.lit(day, dtype=pl.Date)).sort(schema.time_column, schema.key).collect(
        engine=_ENGINE)
    quarantine = (pl.concat(quarantined).sort("file", "row_number", nulls_last=False)
                  if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA))
    return PartitionLoad(rows=rows, quarantine=quarantine, files=[str(f) for f in files],
                         rows_read=rows_read, duplicates=duplicates, skipped=skipped)


def _drop_duplicates(good: pl.DataFrame, schema: SourceSchema
                     ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(kept rows, rows whose id was seen before with different content, exact copies dropped).

    ``good`` is in (file, row) order, so the first delivery of an id is the one kept.
    """
    key = schema.key
    if good[key].n_unique() == good.height:  # the usual case, and cheaper to establish
        return good, good.clear().with_columns(_kept_file=pl.lit(None, pl.String),
                                               _kept_row=pl.lit(None, pl.Int64)), 0
    first = good[key].is_first_distinct()
    content = pl.struct(schema.polars_schema.names()).hash(seed=0)
    marked = good.with_columns(_first=first, _hash=content).with_columns(
        _kept_hash=pl.col("_hash").first().over(key),
        _kept_file=pl.col("_source_file").first().over(key),
        _kept_row=pl.col("_source_row").first().over(key),
    )
    later = marked.filter(~pl.col("_first"))
    conflicting = later.filter(pl.col("_hash") != pl.col("_kept_hash"))
    kept = marked.filter(pl.col("_first")).drop("_first", "_hash", "_kept_hash", "_kept_file",
                                                 "_kept_row")
    return kept, conflicting, later.height - conflicting.height


def load_partition(
    landing: Location | str, warehouse: Path, schema: SourceSchema, day: dt.date,
    config: IngestConfig | None = None,
) -> PartitionLoad:
    """Reads a landing partition and replaces ``raw_<dataset>``'s partition and the dataset's
    quarantine rows of the day in one transaction (a crash leaves the previous content).

    Loading the same files again gives the same table content, byte for byte.
    """
    load = read_partition(landing, schema, day, config)
    if not load.reconciled:  # a bug, never bad input: refuse to write
        raise RuntimeError(f"{schema.name} {day}: {load.describe()}")
    Warehouse(warehouse).replace_partition(
        schema.table, load.rows, day=day,
        extra={QUARANTINE_TABLE: (load.quarantine, {"source": schema.name, "day": day})},
    )
    return load
