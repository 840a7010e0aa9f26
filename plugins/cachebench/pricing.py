"""What a node-hour and a load task cost: per engine, per region, with where each figure comes from.

``price(engine, region, node_type)`` asks the AWS Price List API (GetProducts,
service code AmazonElastiCache) when it can and falls back to the table
``include/prices.csv`` on any error (logged). Valkey and Redis OSS are priced
apart (Valkey about 20% lower) and so is every region, so a comparison of the
two engines is made at the prices the campaign would really pay.

Nothing here runs at import time: prices are looked up at plan time.

- The API is reached through the Airflow connection when one is named
  (:func:`cachebench.targets.aws.clients.client`), else boto3's default chain, at its
  us-east-1 endpoint. ``CACHEBENCH_PRICES=table`` turns it off (the tests do).
- Answers are kept in a JSON file for :data:`CACHE_TTL_S` (24 h):
  ``$CACHEBENCH_PRICE_CACHE``, else ``$XDG_CACHE_HOME/cachebench/prices.json``,
  else ``~/.cache/cachebench/prices.json``. A failed lookup is not kept there,
  only for a few minutes in the process, so one plan asks at most once.
- The local target's node types cost 0 (region :data:`LOCAL_REGION`).

Load tasks (Fargate) are priced from ``include/fargate_prices.csv`` only:
their size in the estimate is an assumption (the real size is the user's task
definition), so a live rate would add precision the estimate does not have.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pydantic

from cachebench import jsonfile

log = logging.getLogger(__name__)

_INCLUDE = Path(__file__).resolve().parents[2] / "include"
DEFAULT_PRICES_PATH: Path = _INCLUDE / "prices.csv"
FARGATE_PRICES_PATH: Path = _INCLUDE / "fargate_prices.csv"
COLUMNS = ("engine", "region", "node_type", "usd_per_node_hour", "source", "as_of")
FARGATE_COLUMNS = ("region", "usd_per_vcpu_hour", "usd_per_gb_hour", "source", "as_of")

LOCAL_REGION = "local"
RUN_FILE = "prices.json"  # the prices a run was planned with, in its run folder
PRICING_ENDPOINT_REGION = "us-east-1"  # the Price List API is served from a few regions only
SOURCE_ENV = "CACHEBENCH_PRICES"  # "table": never ask the API
CACHE_ENV = "CACHEBENCH_PRICE_CACHE"
CACHE_TTL_S = 24 * 3600
_MEMO_TTL_S = 300
_CACHE_ENGINE = {"redis": "Redis", "valkey": "Valkey"}  # the Price List's cacheEngine values


class Price(pydantic.BaseModel, frozen=True):
    """One node-hour's on-demand price, where it comes from and the date it holds for."""

    usd_per_node_hour: float = pydantic.Field(ge=0)
    source: str = pydantic.Field(min_length=1)
    as_of: date


class NodePrice(Price, frozen=True):
    """A :class:`Price` with what it prices: what a run records and the report lists."""

    engine: str
    region: str
    node_type: str


class FargateRate(pydantic.BaseModel, frozen=True):
    """Fargate on-demand Linux/x86 rates of one region."""

    usd_per_vcpu_hour: float = pydantic.Field(gt=0)
    usd_per_gb_hour: float = pydantic.Field(gt=0)
    source: str = pydantic.Field(min_length=1)
    as_of: date

    def task_usd_hour(self, vcpu: float, gib: float) -> float:
        return vcpu * self.usd_per_vcpu_hour + gib * self.usd_per_gb_hour


class PricingError(ValueError):
    """No price: a key the table lacks (the message says what it has)."""


class PriceTableError(PricingError):
    """A malformed price table: the message names the file, line and column."""


# ---------------------------------------------------------------- the tables

_TABLES: dict[Path, tuple[tuple[int, int], dict]] = {}


def _read_csv(path: Path, columns: tuple[str, ...], row_of: Any) -> dict:
    """Rows of ``path`` through ``row_of(cells, fail)``, cached per path and mtime."""
    resolved = Path(path).resolve()
    st = os.stat(resolved)
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _TABLES.get(resolved)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    table: dict = {}
    with open(resolved, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header) != columns:
            raise PriceTableError(f"{resolved}: line 1: expected the header {list(columns)}")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num

            def fail(column: str, problem: str, line: int = line) -> PriceTableError:
                return PriceTableError(f"{resolved}: line {line}: column {column!r}: {problem}")

            if len(row) != len(columns):
                raise fail("row", f"expected {len(columns)} columns, got {len(row)}")
            key, value = row_of(dict(zip(columns, (c.strip() for c in row), strict=True)), fail)
            if key in table:
                raise fail(columns[0], f"{key} is listed twice")
            table[key] = value
    _TABLES[resolved] = (stamp, table)
    return table


def _number(cells: dict[str, str], column: str, fail: Any, positive: bool) -> float:
    try:
        value = float(cells[column])
    except ValueError:
        raise fail(column, f"{cells[column]!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise fail(column, f"{cells[column]} must be a finite number {'>' if positive else '>='} 0")
    return value


def _date(cells: dict[str, str], fail: Any) -> date:
    try:
        return date.fromisoformat(cells["as_of"])
    except ValueError:
        raise fail("as_of", f"{cells['as_of']!r} is not a date (YYYY-MM-DD)") from None


def _source(cells: dict[str, str], fail: Any) -> str:
    if not cells["source"]:
        raise fail("source", "must say where the figure comes from")
    return cells["source"]


def _node_row(cells: dict[str, str], fail: Any) -> tuple[tuple[str, str, str], Price]:
    if cells["engine"] not in _CACHE_ENGINE:
        raise fail("engine", f"{cells['engine']!r}: expected one of {sorted(_CACHE_ENGINE)}")
    for column in ("region", "node_type"):
        if not cells[column]:
            raise fail(column, "must not be empty")
    price = Price(
        usd_per_node_hour=_number(cells, "usd_per_node_hour", fail, positive=False),
        source=_source(cells, fail),
        as_of=_date(cells, fail),
    )
    return (cells["engine"], cells["region"], cells["node_type"]), price


def _fargate_row(cells: dict[str, str], fail: Any) -> tuple[str, FargateRate]:
    if not cells["region"]:
        raise fail("region", "must not be empty")
    rate = FargateRate(
        usd_per_vcpu_hour=_number(cells, "usd_per_vcpu_hour", fail, positive=True),
        usd_per_gb_hour=_number(cells, "usd_per_gb_hour", fail, positive=True),
        source=_source(cells, fail),
        as_of=_date(cells, fail),
    )
    return cells["region"], rate


def load_table(path: Path | None = None) -> dict[tuple[str, str, str], Price]:
    """The node price table, keyed by (engine, region, node_type)."""
    return dict(_read_csv(path or DEFAULT_PRICES_PATH, COLUMNS, _node_row))


def table_price(engine: str, region: str, node_type: str, path: Path | None = None) -> Price:
    """The table's price, or PricingError naming what it has instead."""
    table = load_table(path)
    hit = table.get((engine, region, node_type))
    if hit is None:
        regions = sorted({r for (e, r, n) in table if (e, n) == (engine, node_type)})
        raise PricingError(
            f"no {engine} {node_type} price for region {region!r} in "
            f"{path or DEFAULT_PRICES_PATH} (it has {', '.join(regions) or 'none'})"
        )
    return hit


def fargate_rate(region: str, path: Path | None = None) -> FargateRate:
    """The region's Fargate rates from the table, or PricingError naming the regions it has."""
    table = _read_csv(path or FARGATE_PRICES_PATH, FARGATE_COLUMNS, _fargate_row)
    if region not in table:
        raise PricingError(
            f"no Fargate rate for region {region!r} in {path or FARGATE_PRICES_PATH} "
            f"(it has {', '.join(sorted(table))})"
        )
    return table[region]


# ---------------------------------------------------------------- the Price List API

_MEMO: dict[tuple[str, str, str], tuple[float, Price]] = {}


def price(
    engine: str,
    region: str,
    node_type: str,
    *,
    conn_id: str | None = "aws_default",
    client: Any = None,
    cache_path: Path | None = None,
) -> Price:
    """The on-demand price of one node-hour: the Price List API's, else the table's.

    ``client`` is a boto3 ``pricing`` client to use instead of the connection's.
    Raises PricingError only when neither has a price.
    """
    if region == LOCAL_REGION or (client is None and os.environ.get(SOURCE_ENV) == "table"):
        return table_price(engine, region, node_type)
    key = (engine, region, node_type)
    own_client = client is None
    memo = _MEMO.get(key)
    if own_client and memo is not None and time.monotonic() - memo[0] < _MEMO_TTL_S:
        return memo[1]
    cache = cache_path or cache_file()
    found = _cached(cache, key)
    if found is None:
        try:
            if own_client:
                from botocore.config import Config

                from cachebench.targets.aws.clients import client as make_client

                # Short: an offline plan falls back to the table in seconds, not minutes.
                quick = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
                client = make_client("pricing", PRICING_ENDPOINT_REGION, conn_id, config=quick)
            found = fetch(client, engine, region, node_type)
            _store(cache, key, found)
        except Exception as exc:  # no credentials, no network, no product: the table decides
            log.warning(
                "AWS Price List API gave no price for %s %s in %s (%s: %s); using %s",
                engine,
                node_type,
                region,
                type(exc).__name__,
                exc,
                DEFAULT_PRICES_PATH.name,
            )
            found = table_price(engine, region, node_type)
    if own_client:
        _MEMO[key] = (time.monotonic(), found)
    return found


def fetch(client: Any, engine: str, region: str, node_type: str) -> Price:
    """GetProducts for one node type: its on-demand hourly rate, or PricingError."""
    filters = [
        {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Cache Instance"},
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": node_type},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "cacheEngine", "Value": _CACHE_ENGINE[engine]},
    ]
    items: list[str] = []
    for page in client.get_paginator("get_products").paginate(
        ServiceCode="AmazonElastiCache",
        Filters=filters,
        FormatVersion="aws_v1",
        PaginationConfig={"PageSize": 100},
    ):
        items += page.get("PriceList", [])
    rates = list(_on_demand_rates(items, engine, region, node_type))
    usd = {r[0] for r in rates}
    if len(usd) != 1:
        raise PricingError(
            f"{len(rates)} on-demand node rates for {engine} {node_type} in {region} "
            f"({sorted(usd)}): expected one"
        )
    value, sku, rate_code, published = rates[0]
    return Price(
        usd_per_node_hour=value,
        source=(
            f"AWS Price List API GetProducts AmazonElastiCache (sku {sku}, rateCode {rate_code}, "
            f"fetched {datetime.now(UTC).date().isoformat()})"
        ),
        as_of=published,
    )


def _on_demand_rates(
    items: Iterable[str], engine: str, region: str, node_type: str
) -> Iterable[tuple[float, str, str, date]]:
    """(USD per hour, sku, rate code, publication date) of each on-demand node-hour rate.

    The same instance type also has ExtendedSupport, SyncDurability and Outpost
    usage types (surcharges and other products): only ``[PREFIX-]NodeUsage:<type>``
    is the node's own rate.
    """
    usage = re.compile(rf"^(?:[A-Z0-9]+-)?NodeUsage:{re.escape(node_type)}$")
    for raw in items:
        item = json.loads(raw) if isinstance(raw, str) else raw  # entries are JSON strings
        attrs = item.get("product", {}).get("attributes", {})
        if not usage.match(attrs.get("usagetype", "")):
            continue
        if attrs.get("regionCode", region) != region:
            continue
        if attrs.get("cacheEngine", _CACHE_ENGINE[engine]) != _CACHE_ENGINE[engine]:
            continue
        published = item.get("publicationDate", "")[:10]
        for term in item.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = float(dim.get("pricePerUnit", {}).get("USD", "nan"))
                if dim.get("unit") == "Hrs" and math.isfinite(usd) and usd > 0:
                    when = published or term.get("effectiveDate", "")[:10]
                    yield (
                        usd,
                        item["product"].get("sku", "?"),
                        dim.get("rateCode", "?"),
                        (date.fromisoformat(when)),
                    )


# ---------------------------------------------------------------- the file cache


def cache_file() -> Path:
    """Where API answers are kept (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cachebench" / "prices.json"


def _key(key: tuple[str, str, str]) -> str:
    return "|".join(key)


def _cached(path: Path, key: tuple[str, str, str]) -> Price | None:
    try:
        entry = json.loads(path.read_text())["entries"][_key(key)]
        if time.time() - float(entry["fetched_at"]) < CACHE_TTL_S:
            return Price.model_validate(entry["price"])
    except (OSError, ValueError, KeyError, TypeError, pydantic.ValidationError):
        pass  # no file, no entry, or a file from elsewhere: ask again
    return None


def _store(path: Path, key: tuple[str, str, str], found: Price) -> None:
    try:
        data = json.loads(path.read_text())
        entries = data["entries"] if isinstance(data.get("entries"), dict) else {}
    except (OSError, ValueError, AttributeError):
        entries = {}
    entries[_key(key)] = {"fetched_at": time.time(), "price": found.model_dump(mode="json")}
    try:
        # whole or not at all: another plan may read it now
        jsonfile.write(path, {"version": 1, "entries": entries})
    except OSError as exc:
        log.warning("price cache %s not written (%s); prices are asked again next time", path, exc)


def clear_memo() -> None:
    """Forget this process's recent answers (tests; a long-lived process after a fix)."""
    _MEMO.clear()


# ---------------------------------------------------------------- a run's prices


def write_run_prices(run_dir: Path, prices: Iterable[NodePrice]) -> Path:
    """Keep the prices a run was planned with, for its report."""
    path = Path(run_dir) / RUN_FILE
    path.write_text(json.dumps([p.model_dump(mode="json") for p in prices], indent=2))
    return path


def read_run_prices(run_dir: Path) -> dict[tuple[str, str], NodePrice]:
    """The run's prices by (engine, node_type); {} when the run has none (planned before)."""
    try:
        rows = json.loads((Path(run_dir) / RUN_FILE).read_text())
        prices = [NodePrice.model_validate(r) for r in rows]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable, reporting without prices: %s", Path(run_dir) / RUN_FILE, exc)
        return {}
    return {(p.engine, p.node_type): p for p in prices}
