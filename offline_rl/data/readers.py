"""Reading one landing file: Parquet, CSV and JSON lines (optionally gzip-compressed) into the
schema's typed columns, with a per-row reason for every record that cannot be taken
(``offline_rl.data.ingest`` describes the landing contract). A file that cannot be read as a
whole raises ``FileRejected`` with the reason."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from offline_rl.data.schemas import SourceSchema
from offline_rl.paths import Location, RemotePath

FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
}
"""Landing file suffix -> format."""

_QUOTED_FIELD = r'"[^"]*(?:""[^"]*)*"'
_JSON_KEY = r'[{,]\s*"(?:[^"\\]|\\.)*"\s*:'
_JSON_KEY_EDGES = r'^[{,]\s*"|"\s*:$'
_TRUE_FALSE = {"true": True, "false": False}


class FileRejected(Exception):
    """A landing file that is quarantined whole; the message is the reason."""




def landing_format(name: str) -> str | None:
    """The format of a landing file name (None if unsupported)."""
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return FORMATS[suffix]
    return None


def one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def join_reasons(reasons: list[pl.Expr]) -> pl.Expr:
    """The non-null reasons joined with ``"; "``, null if there are none."""
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)



# ---------------------------------------------------------------- reading files

def _read_bytes(path: Location, gzipped: bool) -> bytes:
    data = path.read_bytes()
    if not data:
        raise FileRejected("empty file (0 bytes)")
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileRejected(f"corrupt or truncated gzip: {one_line(exc)}") from None
    return data


def _lines(data: bytes) -> tuple[pl.Series, bool, bytes]:
    """The text's lines (CR of CRLF removed), whether the last one ends with a line break, and
    the text's bytes without a byte-order mark."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark some spreadsheet exports add
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text (byte {exc.start})") from None
    if not text:
        raise FileRejected("empty file (no content)")
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
    return join_reasons([cut, base])


def _read_csv(data: bytes, schema: SourceSchema) -> pl.DataFrame:
    lines, terminated, _ = _lines(data)
    if not terminated and lines.len() == 1:
        raise FileRejected("truncated header (no line break after it)")
    try:
        header = pl.read_csv(io.StringIO(lines[0] + "\n"), has_header=False,
                             infer_schema=False).row(0)
    except Exception as exc:
        raise FileRejected(f"unreadable CSV header: {one_line(exc)}") from None
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
            raise FileRejected(f"unparsable CSV: {one_line(exc)}") from None
        if parsed.height != ok.height:
            raise FileRejected(f"unparsable CSV: {ok.height} well-formed lines gave "
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
    keys = join_reasons([
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
            raise FileRejected(f"unparsable JSON lines: {one_line(exc)}") from None
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
        raise FileRejected(f"duplicate {what}(s) {', '.join(dupes)}")
    missing = [c for c in expected if c not in names and c not in schema.optional]
    if missing:
        raise FileRejected(f"missing {what}(s) {', '.join(missing)}")
    extra = [c for c in names if c not in expected]
    if extra:
        raise FileRejected(f"unexpected {what}(s) {', '.join(extra)}")


def _read_parquet(path: Location, schema: SourceSchema) -> pl.DataFrame:
    source: Path | io.BytesIO
    if isinstance(path, RemotePath):
        source = io.BytesIO(path.read_bytes())  # one file in memory, read in one request
        empty = not source.getbuffer().nbytes
    else:
        source, empty = path, path.stat().st_size == 0
    if empty:
        raise FileRejected("empty file (0 bytes)")
    try:
        frame = pl.read_parquet(source)
    except Exception as exc:
        raise FileRejected(f"unreadable parquet: {type(exc).__name__}: {one_line(exc)}") from None
    _check_columns(frame.columns, schema, what="column")
    # one chunk per column, made a column at a time (each chunked column let go once copied):
    # a file reads as one chunk per row group, and the one-chunk columns added below would
    # otherwise make polars copy every column they meet in an expression (the row rules:
    # +1.5 GB at 10M clickstream rows)
    columns: list[pl.Series] = []
    for name in frame.columns:
        columns.append(frame.get_column(name).rechunk())
        frame = frame.drop(name)
    frame = pl.DataFrame(columns).with_columns(
        _source_row=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        _record=pl.lit(None, pl.String), _parse=pl.lit(None, pl.String))
    del columns
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
    become null and are named in ``_parse``. Raises ``FileRejected`` for unconvertible types."""
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
            raise FileRejected(f"column {name} has type {have}, expected {want}")
        converted = (_parse_string(name, want) if have == pl.String()
                     else pl.col(name).cast(want, strict=False))
        exprs.append(converted.alias(name))
        shown = pl.col(name).cast(pl.String).str.head(80)
        failures.append(pl.when(pl.col(name).is_not_null() & converted.is_null()).then(
            pl.format(f"column {name}: cannot read '{{}}' as {want}", shown)))
    if not exprs:
        return frame.select(*schema.polars_schema.names(), "_source_row", "_record", "_parse")
    return frame.with_columns(
        _parse=join_reasons([pl.col("_parse"), *failures]),
    ).with_columns(exprs).select(*schema.polars_schema.names(), "_source_row", "_record",
                                 "_parse")


def read_file(path: Location, fmt: str, schema: SourceSchema) -> pl.DataFrame:
    """Schema columns typed, ``_source_row``, ``_record`` (raw text records), ``_parse``
    (problems found while reading) and ``_unparsed`` (the record gave no values)."""
    if fmt == "parquet":
        return _read_parquet(path, schema)
    data = _read_bytes(path, gzipped=path.name.endswith(".gz"))
    return _read_csv(data, schema) if fmt == "csv" else _read_jsonl(data, schema)
