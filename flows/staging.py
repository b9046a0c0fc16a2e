"""Rows of one import set aside on disk by time, until every file has been read.

Files may come in any order and overlap, and a file need not be in time order: `Staging`
writes each chunk's rows into the partition of their time (`width_ns` wide, aligned to the
epoch), one small part per chunk and partition. Once every file is read, each partition is
read back whole, in time order of the partitions; memory holds one chunk while staging and
one partition after. Parts are named by source then chunk, so a partition reads back in the
order its rows were given. Parts are uncompressed Arrow IPC files: they live minutes, and
writing and reading them back is a copy of the columns (Parquet's encoding cost five times
as much).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl


class Staging:
    """Partitions of rows with an Int64 `ts` column, under `directory` (created, and
    emptied first)."""

    def __init__(self, directory: Path, width_ns: int, schema: dict[str, pl.DataType]) -> None:
        if width_ns <= 0:
            raise ValueError(f"width_ns must be > 0, got {width_ns}")
        self.directory = directory
        self.width_ns = width_ns
        self.schema = schema
        self.rows = 0
        self._seq = 0
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)

    def add(self, rows: pl.DataFrame, source: int) -> None:
        """Set aside `rows` (of `schema`), from source number `source`."""
        if not len(rows):
            return
        self._seq += 1
        first, last = rows["ts"].min(), rows["ts"].max()
        assert isinstance(first, int) and isinstance(last, int)
        if first // self.width_ns == last // self.width_ns:
            self._write(first // self.width_ns, rows, source)
        else:
            keyed = rows.with_columns((pl.col("ts") // self.width_ns).alias("_partition"))
            for (partition,), part in keyed.partition_by(
                "_partition", as_dict=True, include_key=False, maintain_order=True
            ).items():
                self._write(int(partition), part, source)
        self.rows += len(rows)

    def partitions(self) -> list[int]:
        """The partitions holding rows (their start is `partition * width_ns`), oldest first."""
        return sorted(int(p.name) for p in self.directory.iterdir() if p.is_dir())

    def read(self, partition: int) -> pl.DataFrame:
        """Every row set aside in `partition`, in the order given."""
        parts = sorted((self.directory / str(partition)).glob("*.arrow"))
        if not parts:
            return pl.DataFrame(schema=self.schema)
        return pl.concat([pl.read_ipc(p) for p in parts], how="vertical", rechunk=False)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _write(self, partition: int, rows: pl.DataFrame, source: int) -> None:
        folder = self.directory / str(partition)
        folder.mkdir(exist_ok=True)
        rows.write_ipc(folder / f"{source:06d}-{self._seq:09d}.arrow", compression="uncompressed")
