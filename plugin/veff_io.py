"""Writing scored variants: the VCF (plain or BGZF), its header lines, and the optional table (no torch here).

INFO fields follow kipoi-veff: `KV:<source>:<model>:<SCORE>` (e.g. `KV:kipoi:GENA-LM/promoter:DIFF`), Number=A
(one value per ALT, `,`-separated in ALT order, `.` for an ALT that was not scored), each value the model outputs
`|`-separated in the order the header's description names them (`Prediction from model outputs: acceptor|donor`).
htslib warns that such IDs are not valid tag names ("Invalid tag name"), but reads them; that is the convention
kipoi-veff users parse.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np

SKIPPED_ID = "KV_SKIPPED"
NORMALISED_ID = "KV_NORMALISED"
MODEL_HEADER = "KV_model"


def is_gzip_name(path: str | os.PathLike) -> bool:
    """True for `.gz` / `.bgz` output names: those are written as BGZF (`io_utils.atomic_write(..., bgzf=True)`)."""
    return str(path).endswith((".gz", ".bgz"))


def format_value(value: float, integer: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or (
            isinstance(value, np.floating) and np.isnan(value)):
        return "nan"
    if integer:
        return str(int(value))
    return f"{float(value):.6g}"


def format_values(values: np.ndarray, integer: bool = False) -> str:
    """One ALT's values for one score: the model outputs `|`-separated."""
    return "|".join(format_value(v, integer) for v in np.ravel(values))


def header_value(text: Any) -> str:
    """A structured-header value, quoted when it holds characters that would end or split it."""
    text = str(text)
    if any(c in text for c in ',<>="; ') or not text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def info_header(field_id: str, number: str, type_: str, description: str) -> str:
    description = description.replace('"', "'")
    return f'##INFO=<ID={field_id},Number={number},Type={type_},Description="{description}">'


@dataclass
class VcfHeader:
    """The input header with our INFO definitions and model line added (replacing older ones of the same ID)."""

    lines: list[str]

    @classmethod
    def build(cls, input_lines: Sequence[str], info_lines: Sequence[str], meta_lines: Sequence[str],
              replaced_ids: set[str], model_id: str, source: str) -> "VcfHeader":
        kept = []
        for line in input_lines:
            if line.startswith("##INFO=<ID="):
                field_id = line[len("##INFO=<ID="):].split(",", 1)[0]
                if field_id in replaced_ids:
                    continue
            if line.startswith(f"##{MODEL_HEADER}=<ID={model_id},") and f"source={source}" in line:
                continue
            kept.append(line)
        if not kept or not kept[0].startswith("##fileformat="):
            kept.insert(0, "##fileformat=VCFv4.2")
        column_line = kept[-1] if kept[-1].startswith("#CHROM") else None
        if column_line is None:
            column_line = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
        else:
            kept = kept[:-1]
        return cls(kept + list(info_lines) + list(meta_lines) + [column_line])

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def replace_info(info: str, entries: Sequence[tuple[str, str]], replaced_ids: set[str]) -> str:
    """The INFO column with our entries appended; any older entry of one of our IDs is dropped first."""
    kept = [] if info in (".", "") else [item for item in info.split(";")
                                         if item and item.split("=", 1)[0] not in replaced_ids]
    kept += [f"{key}={value}" for key, value in entries]
    return ";".join(kept) if kept else "."


class TableWriter:
    """The optional per-(variant, ALT, window) table: `.tsv` / `.tsv.gz`, or `.parquet` (needs pyarrow).

    Streams: rows are handed over per chunk of variants. Written into an open binary handle (atomic writer; for
    `.tsv.gz` the caller opens it as BGZF: `io_utils.atomic_write(path, "wb", bgzf=is_gzip_name(path))`).
    """

    def __init__(self, path: str | os.PathLike, handle: IO[bytes], columns: Sequence[tuple[str, str]]):
        """columns: (name, type) pairs, type one of str, int, float, bool (the Parquet schema)."""
        self.path = Path(path)
        self.columns = [name for name, _ in columns]
        self.types = dict(columns)
        self.parquet = self.path.suffix == ".parquet"
        self._handle = handle
        self._parquet_writer = None
        if self.parquet:
            import pyarrow as pa

            arrow_types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
            self._schema = pa.schema([(name, arrow_types[kind]) for name, kind in columns])
        else:
            self._out = handle
            self._write_text("\t".join(self.columns) + "\n")

    def _write_text(self, text: str) -> None:
        self._out.write(text.encode("utf-8"))

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            data = {column: [row.get(column) for row in rows] for column in self.columns}
            if self._parquet_writer is None:
                self._parquet_writer = pq.ParquetWriter(self._handle, self._schema)
            self._parquet_writer.write_table(pa.table(data, schema=self._schema))
            return
        lines = []
        for row in rows:
            values = []
            for column in self.columns:
                value = row.get(column)
                if value is None:
                    values.append("")
                elif isinstance(value, (float, np.floating)):
                    values.append(format_value(value))
                else:
                    values.append(str(value))
            lines.append("\t".join(values) + "\n")
        self._write_text("".join(lines))

    def close(self) -> None:
        if self.parquet:
            import pyarrow.parquet as pq

            if self._parquet_writer is None:  # no rows at all: still a valid (empty) file with the columns
                self._parquet_writer = pq.ParquetWriter(self._handle, self._schema)
            self._parquet_writer.close()


def check_table_path(path: str | os.PathLike) -> None:
    name = str(path)
    if name.endswith(".parquet"):
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise ValueError(f"{name}: Parquet output needs pyarrow (pip install pyarrow); or write .tsv / "
                             ".tsv.gz")
        return
    if not name.endswith((".tsv", ".tsv.gz")):
        raise ValueError(f"{name}: the table must end in .tsv, .tsv.gz or .parquet")


def count_vcf_records(path: str | os.PathLike, block: int = 1 << 20) -> int:
    """Data lines of a VCF (plain, gzip or BGZF; header and blank lines not counted), for a progress bar's total.

    One streaming pass over the (decompressed) bytes, counting newlines in 1 MB blocks: hundreds of MB/s, a small
    fraction of what scoring the same records costs."""
    import gzip
    import re

    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    count, previous, at_line_start, in_header = 0, b"\n", True, True
    with opener(path, "rb") as handle:
        while True:
            chunk = handle.read(block)
            if not chunk:
                break
            if in_header:  # header lines come first: skip them line by line, then count the rest in bulk
                while chunk and at_line_start and chunk[:1] == b"#":
                    end = chunk.find(b"\n")
                    if end < 0:  # a header line longer than the block: read on
                        more = handle.read(block)
                        if not more:
                            chunk = b""
                            break
                        chunk += more
                        continue
                    chunk = chunk[end + 1:]
                if not chunk:
                    continue
                in_header = False
            count += chunk.count(b"\n")
            if b"\n\n" in chunk:  # blank lines (rare): not records
                count -= len(re.findall(rb"(?<=\n)\n", chunk))
            if previous == b"\n" and chunk[:1] == b"\n":  # a blank line across the block boundary
                count -= 1
            previous = chunk[-1:]
    if previous not in (b"\n", b"") and not in_header:
        count += 1  # the last line has no newline
    return count
