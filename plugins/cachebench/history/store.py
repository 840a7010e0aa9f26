"""The history dataset: parquet files partitioned by campaign, read with DuckDB.

    <root>/_history/campaign=<campaign>/<run folder>.parquet     one file per campaign run

Locally <root> is the results root (``_history``: no campaign slug has an underscore, so
it never meets a campaign's folder); on aws it is
``s3://<results_bucket>/<results_prefix>`` of the campaign's resolved aws settings.

* Writing a campaign run again replaces its file, so its rows: one run, one file.
* A half-written run never shows: a local file is written beside its final name as
  ``.<name>.<pid>.tmp`` (no ``*.parquet`` glob matches it), synced, then renamed over
  it (atomic on POSIX); an S3 object appears only once its upload is complete.
* A file that is not a parquet file of this history (unreadable, no history schema
  marker, not the run or campaign its name says) is reported and skipped, never read.

Query it yourself with DuckDB, e.g.::

    SELECT run_id, point_id, count(*) AS runs, avg(ops_per_sec)
    FROM read_parquet('results/_history/campaign=my-campaign/*.parquet') GROUP BY ALL
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cachebench.history.rows import CORE, HistoryRow, arrow_schema
from cachebench.models import Strict

log = logging.getLogger(__name__)

FOLDER = "_history"
#: Parquet key-value metadata that marks a file as this history's, and its format version.
MARKER = b"cachebench.history"
FORMAT = b"1"


class History(Strict):
    """A campaign's history as read: its rows, and the files skipped (with why)."""

    where: str
    rows: tuple[HistoryRow, ...] = ()
    skipped: tuple[str, ...] = ()


class Store(Protocol):
    where: str

    def write(self, campaign: str, run: str, rows: Sequence[HistoryRow]) -> str:
        """Write (or replace) campaign run ``run``'s rows; return where they are."""
        ...

    def files(self, campaign: str) -> contextlib.AbstractContextManager[list[Path]]:
        """The campaign's history files as local paths, for as long as the block runs."""
        ...

    def runs(self, campaign: str) -> list[str]:
        """The folder names (run slugs) of the campaign runs in the history, listed only."""
        ...


def _table(rows: Sequence[HistoryRow]) -> Any:
    import pyarrow as pa

    schema = arrow_schema().with_metadata({MARKER: FORMAT})
    return pa.Table.from_pylist([r.model_dump() for r in rows], schema=schema)


def _write_parquet(rows: Sequence[HistoryRow], path: Path) -> None:
    import pyarrow.parquet as pq

    with path.open("wb") as fh:
        pq.write_table(_table(rows), fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class LocalStore:
    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def partition(self, campaign: str) -> Path:
        return self.root / f"campaign={campaign}"

    def write(self, campaign: str, run: str, rows: Sequence[HistoryRow]) -> str:
        folder = self.partition(campaign)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{run}.parquet"
        tmp = folder / f".{final.name}.{os.getpid()}.tmp"
        for stale in folder.glob(f".{final.name}.*.tmp"):  # a writer killed before
            stale.unlink(missing_ok=True)
        try:
            _write_parquet(rows, tmp)
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the rename itself survives a crash
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return str(final)

    @contextlib.contextmanager
    def files(self, campaign: str) -> Iterator[list[Path]]:
        yield sorted(self.partition(campaign).glob("*.parquet"))

    def runs(self, campaign: str) -> list[str]:
        return sorted(p.stem for p in self.partition(campaign).glob("*.parquet"))


@dataclass(frozen=True)
class S3Store:
    bucket: str
    prefix: str
    region: str | None = None
    conn_id: str | None = None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, campaign: str, name: str = "") -> str:
        return f"{self.prefix}/campaign={campaign}/{name}"

    def _client(self) -> Any:
        from cachebench.aws.clients import client

        return client("s3", self.region, self.conn_id)

    def write(self, campaign: str, run: str, rows: Sequence[HistoryRow]) -> str:
        key = self._key(campaign, f"{run}.parquet")
        with tempfile.TemporaryDirectory(prefix="cachebench-history-") as tmp:
            path = Path(tmp) / f"{run}.parquet"
            _write_parquet(rows, path)
            # one PUT (or a multipart upload completed last): readers see all of it or none
            self._client().upload_file(str(path), self.bucket, key)
        return f"s3://{self.bucket}/{key}"

    def _keys(self, s3: Any, campaign: str) -> list[str]:
        """The names of the campaign's history objects (no deeper key, .parquet only)."""
        prefix = self._key(campaign)
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if "/" not in name and name.endswith(".parquet"):
                    out.append(name)
        return sorted(out)

    @contextlib.contextmanager
    def files(self, campaign: str) -> Iterator[list[Path]]:
        s3 = self._client()
        with tempfile.TemporaryDirectory(prefix="cachebench-history-") as tmp:
            folder = Path(tmp) / f"campaign={campaign}"
            folder.mkdir()
            for name in self._keys(s3, campaign):
                s3.download_file(self.bucket, self._key(campaign, name), str(folder / name))
            yield sorted(folder.glob("*.parquet"))

    def runs(self, campaign: str) -> list[str]:
        return [name.removesuffix(".parquet") for name in self._keys(self._client(), campaign)]


def for_campaign(spec: Any) -> Store:
    """Where campaign ``spec``'s history lives: under the results root (local), in the
    results bucket of its resolved aws settings (aws)."""
    if spec.target == "aws":
        from cachebench.aws.settings import resolve

        return aws_store(resolve(spec.aws))
    return local_store()


def local_store(root: Path | None = None) -> LocalStore:
    from cachebench.workspace import results_root

    return LocalStore((root or results_root()) / FOLDER)


def aws_store(settings: Any) -> S3Store:
    """The history in the results bucket of aws ``settings`` (aws.settings.AwsSettings)."""
    bucket = settings.bucket_for_results
    if not bucket:
        raise ValueError("aws.results_bucket: required to keep the campaign's history")
    prefix = f"{settings.results_prefix.strip('/')}/{FOLDER}".lstrip("/")
    return S3Store(bucket, prefix, settings.region, settings.aws_conn_id)


def _check(path: Path) -> str:
    """Why ``path`` is not a file of this campaign's history ('' when it is)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several kinds for a broken footer
        return f"not a readable parquet file ({type(exc).__name__}: {exc})"
    marker = (schema.metadata or {}).get(MARKER)
    if marker is None:
        return "a parquet file, but not one of cachebench's history (no history marker)"
    if marker != FORMAT:
        return f"history format {marker.decode(errors='replace')!r}, this cachebench reads 1"
    missing = [c for c in CORE if c not in schema.names]
    if missing:
        return f"lacks the history's columns {', '.join(missing)}"
    if meta.num_rows == 0:
        return "holds no row"
    return ""


def read(store: Store, campaign: str) -> History:
    """Every campaign run in ``campaign``'s history; each file that cannot be one of its
    runs is skipped and named with why (a report is never sunk by it)."""
    import duckdb

    skipped: list[str] = []
    rows: list[HistoryRow] = []
    with store.files(campaign) as files:
        good = []
        for path in files:
            why = _check(path)
            if why:
                skipped.append(f"{path.name}: {why}")
            else:
                good.append(path)
        by_file: dict[str, list[dict[str, Any]]] = {}
        con = duckdb.connect()
        try:
            for path, records in _records(con, good, skipped):
                by_file[path] = records
        finally:
            con.close()
        fields = set(HistoryRow.model_fields)
        for path in good:
            records = by_file.get(str(path))
            if records is None:
                continue
            name = path.name
            wrong = {(r.get("campaign"), r.get("run_slug")) for r in records} - {
                (campaign, path.stem)
            }
            if wrong:
                got = ", ".join(sorted(f"{c}/{s}" for c, s in wrong))
                skipped.append(f"{name}: holds rows of {got}, not of {campaign}/{path.stem}")
                continue
            try:
                rows += [HistoryRow(**{k: v for k, v in r.items() if k in fields}) for r in records]
            except ValueError as exc:
                skipped.append(f"{name}: rows not readable as history rows: {exc}")
    for line in skipped:
        log.warning("history of %s at %s: skipped %s", campaign, store.where, line)
    return History(where=store.where, rows=tuple(rows), skipped=tuple(skipped))


def _records(
    con: Any, paths: list[Path], skipped: list[str]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each file's rows as dicts, through one DuckDB scan (file by file when one fails, so
    a corrupt file is named and skipped while the others are read)."""
    if not paths:
        return
    try:
        table = con.read_parquet(
            [str(p) for p in paths], union_by_name=True, filename=True, hive_partitioning=False
        ).to_arrow_table()
    except Exception as exc:
        if len(paths) == 1:
            skipped.append(f"{paths[0].name}: unreadable ({type(exc).__name__}: {exc})")
            return
        for p in paths:
            yield from _records(con, [p], skipped)
        return
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in table.to_pylist():
        grouped.setdefault(record.pop("filename"), []).append(record)
    yield from grouped.items()
