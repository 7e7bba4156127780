"""The seeded dataset: 90 days of order history as write-model rows and as outbox events.

Pure generation, no SQL. `generate(sf, seed)` draws the whole history as NumPy columns, walking no
row in Python: the same (sf, seed) gives the same columns on every machine. A table's rows are
rendered as COPY text (`workloads/copy_text.py`) in chunks as a loader asks for them, exactly as
the server prints them back, so a loaded table can be checked byte for byte.

Every draw comes from the raw 64-bit output of a PCG64 bit generator seeded through SeedSequence
(NumPy keeps both streams stable across versions; its `Generator` methods are not promised to
be): doubles are the top 53 bits, and integers, permutations and weighted picks are built on them
here. Each part of the dataset (customers, catalog, orders) has its own stream, so changing one
part's draws leaves the others' rows alone.

The checksum is sha256 over each table's name and the sha256 of its COPY text, tables in `TABLES`
order (so that tables can be rendered and loaded in parallel).

The history's rules, as the write model's commands would have left it:
- an order is placed at a time on a curve that grows to GROWTH times its first rate, by a
  customer picked with a Zipf skew, with 1 to 8 lines of distinct products (Zipf-skewed) that are
  active at that time, at the price they had then; 90% are shipped and 5% cancelled 1 to 48 hours
  later (if that falls before the anchor), the rest stay placed;
- a product's version starts at 1 and each price change or discontinuation bumps it; an order is
  placed at version 1 and shipped or cancelled at 2;
- stock: first stock = final stock + units kept (in orders not cancelled); final stock is raised
  where a cancelled order once held more units than were left, so stock never goes negative;
- the outbox holds every customer's and product's registration, then every event in time order
  (at one instant: catalog changes, then ships and cancels, then placements).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from implementations.domain import events as ev
from implementations.write_model import SCHEMA_VERSION
from workloads import copy_text as ct

GENERATOR_VERSION = 3  # bump when the generated rows change: templates are keyed by it
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 90
MAX_SF = 100.0
MAX_SEED = 2**31 - 1
CHUNK_ROWS = 100_000  # rows rendered at a time

_HOUR_MS = 3_600_000
_SPAN_MS = HISTORY_DAYS * 24 * _HOUR_MS  # the history: [START, ANCHOR) in ms from START
ANCHOR_MS = int(ANCHOR.timestamp()) * 1_000
START_MS = ANCHOR_MS - _SPAN_MS  # first possible order
SETUP_MS = START_MS - 24 * _HOUR_MS  # customers registered, products added

TABLES: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name", "email", "created_at"),
    "products": ("id", "sku", "name", "category", "price_cents", "stock", "status", "version"),
    "price_history": (
        "id",
        "product_id",
        "old_price_cents",
        "new_price_cents",
        "reason",
        "changed_at",
    ),
    "orders": (
        "id",
        "customer_id",
        "status",
        "total_cents",
        "placed_at",
        "idempotency_key",
        "version",
    ),
    "order_lines": ("order_id", "line_no", "product_id", "quantity", "unit_price_cents"),
    "outbox": ("event_type", "payload", "occurred_at"),
}

LINE_WEIGHTS = (35, 27, 15, 9, 6, 4, 2, 2)  # 1..8 lines, mean about 2.5
QUANTITY_WEIGHTS = (60, 20, 10, 6, 4)  # 1..5 units
PRODUCT_ZIPF_S = 1.1
CUSTOMER_ZIPF_S = 0.4
GROWTH = 4.0  # the last day of the window has this many times the orders of the first
PRICE_RANGE = (199, 49_999)
PRICE_CHANGED_SHARE, DISCONTINUED_SHARE, LOW_STOCK_SHARE = 0.10, 0.02, 0.10
SHIP_P, CANCEL_P = 0.90, 0.05  # the rest stay placed
CATEGORIES = (
    "Books",
    "Electronics",
    "Kitchen",
    "Garden",
    "Toys",
    "Sports",
    "Beauty",
    "Grocery",
    "Office",
    "Automotive",
    "Pets",
    "Music",
    "Outdoors",
    "Tools",
    "Jewelry",
    "Shoes",
    "Clothing",
    "Health",
    "Baby",
    "Furniture",
)
ADJECTIVES = (
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Elegant",
    "Ergonomic",
    "Essential",
    "Handmade",
    "Heavy-Duty",
    "Lightweight",
    "Modern",
    "Portable",
    "Premium",
    "Rustic",
    "Sleek",
    "Smart",
    "Sturdy",
    "Vintage",
    "Wireless",
    "Cozy",
)
MATERIALS = (
    "Bamboo",
    "Cotton",
    "Ceramic",
    "Copper",
    "Glass",
    "Leather",
    "Linen",
    "Maple",
    "Marble",
    "Oak",
    "Plastic",
    "Rubber",
    "Silk",
    "Steel",
    "Walnut",
    "Wool",
    "Granite",
    "Canvas",
)
NOUNS = (
    "Lamp",
    "Kettle",
    "Backpack",
    "Chair",
    "Notebook",
    "Speaker",
    "Blanket",
    "Mug",
    "Jacket",
    "Helmet",
    "Bottle",
    "Brush",
    "Clock",
    "Desk",
    "Frame",
    "Glove",
    "Hammer",
    "Headphones",
    "Ladder",
    "Mat",
    "Pillow",
    "Planter",
    "Scarf",
    "Skillet",
    "Sneakers",
    "Tent",
    "Toolbox",
    "Umbrella",
    "Vase",
    "Wallet",
)
FIRST_NAMES = (
    "Ada",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farah",
    "Gustav",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Mateo",
    "Nina",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
)
LAST_NAMES = (
    "Andersen",
    "Baker",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Murphy",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
)
PRICE_REASONS = ("promotion", "supplier cost change", "competitor match", "seasonal", "clearance")


STATUSES = ("placed", "shipped", "cancelled")
for _words in (CATEGORIES, ADJECTIVES, MATERIALS, NOUNS, FIRST_NAMES, LAST_NAMES, PRICE_REASONS):
    ct.check_plain(_words)


# --- scale ---------------------------------------------------------------------------------------


def validate(sf: float, seed: int) -> None:
    """Raise ValueError with a reason unless (sf, seed) can name and generate a dataset."""
    if isinstance(sf, bool) or not isinstance(sf, int | float) or not 0 < sf <= MAX_SF:
        raise ValueError(f"sf (scale factor) must be > 0 and <= {MAX_SF:g}, got {sf!r}")
    if round(sf, 4) != sf:
        raise ValueError(f"sf must have at most 4 decimal places, got {sf!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def sf_text(sf: float) -> str:
    """The canonical spelling of a scale factor: 1, 0.1, 2.5."""
    return f"{sf:.4f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Scale:
    sf: float
    seed: int

    def __post_init__(self) -> None:
        validate(self.sf, self.seed)

    @property
    def customers(self) -> int:
        return max(1, round(10_000 * self.sf))

    @property
    def products(self) -> int:
        return max(20, round(2_000 * self.sf))

    @property
    def categories(self) -> int:
        return min(len(CATEGORIES), self.products)

    @property
    def orders(self) -> int:
        return max(1, round(200_000 * self.sf))


# --- randomness: raw bits only ------------------------------------------------------------------


class _Stream:
    """Uniform doubles in [0, 1) from one part's PCG64 stream."""

    def __init__(self, seed: int, part: str) -> None:
        key = hashlib.sha256(f"cqrs-bench/{seed}/{part}".encode()).digest()
        self._bits = np.random.PCG64(np.random.SeedSequence(int.from_bytes(key, "big")))

    def random(self, n: int) -> np.ndarray:
        return (self._bits.random_raw(n) >> np.uint64(11)) * (1.0 / 2**53)

    def below(self, n: int | np.ndarray, size: int | None = None) -> np.ndarray:
        """Integers in [0, n) (n a scalar or one per draw)."""
        count = size if size is not None else len(n)
        return np.minimum((self.random(count) * n).astype(np.int64), np.asarray(n) - 1)

    def permutation(self, n: int) -> np.ndarray:
        """0..n-1 shuffled."""
        return np.argsort(self.random(n), kind="stable")

    def weighted(self, weights: np.ndarray, size: int) -> np.ndarray:
        """Indexes into `weights`, each drawn with probability proportional to its weight."""
        cum = np.cumsum(weights, dtype=np.float64)
        picks = np.searchsorted(cum, self.random(size) * cum[-1], side="right")
        return np.minimum(picks, len(cum) - 1)


class _Zipf:
    """Ids 1..n, the most popular first in a seeded permutation (weight 1/rank**s)."""

    def __init__(self, stream: _Stream, n: int, s: float) -> None:
        self.stream = stream
        self.ids = stream.permutation(n) + 1
        self.weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s

    def pick(self, size: int) -> np.ndarray:
        return self.ids[self.stream.weighted(self.weights, size)]


# --- the dataset -------------------------------------------------------------------------------

Render = Callable[[slice], list]  # a slice of rows -> their COPY columns


@dataclass
class Dataset:
    """The generated history: each table's row count, and its rows rendered on demand."""

    scale: Scale
    rows: dict[str, int]
    render: dict[str, Render]  # in TABLES (load) order
    digests: dict[str, str] = field(default_factory=dict)  # sha256 of each table's COPY text

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def chunks(self, table: str) -> Iterator[pa.Buffer]:
        """The table's COPY text, CHUNK_ROWS rows at a time; its digest is kept once all is read."""
        digest = hashlib.sha256()
        for start in range(0, self.rows[table], CHUNK_ROWS):
            chunk = ct.rows(self.render[table](slice(start, start + CHUNK_ROWS)))
            digest.update(chunk)
            yield chunk
        self.digests[table] = digest.hexdigest()

    def text(self, table: str) -> str:
        """A table's COPY text (for tests and inspection; loading streams the chunks)."""
        return b"".join(bytes(chunk) for chunk in self.chunks(table)).decode()

    @property
    def checksum(self) -> str:
        """sha256 over each table's name and digest, in TABLES order (rendering what is unread)."""
        total = hashlib.sha256()
        for table in TABLES:
            if table not in self.digests:
                for _chunk in self.chunks(table):
                    pass
            total.update(f"{table}\n{self.digests[table]}\n".encode())
        return total.hexdigest()

    def info(self) -> dict[str, str]:
        """The dataset_info rows describing this dataset."""
        return {
            "sf": sf_text(self.scale.sf),
            "seed": str(self.scale.seed),
            "schema_version": str(SCHEMA_VERSION),
            "generator_version": str(GENERATOR_VERSION),
            "checksum": self.checksum,
            "anchor": ANCHOR.isoformat(),
            "rows": json.dumps(self.rows),
        }


def generate(sf: float, seed: int) -> Dataset:
    """The dataset for (sf, seed); the same arguments give byte-identical rows."""
    scale = Scale(sf, seed)
    customers = _Customers(scale, _Stream(seed, "customers"))
    catalog = _Catalog(scale, _Stream(seed, "catalog"))
    history = _History(scale, catalog, _Stream(seed, "orders"))
    with ThreadPoolExecutor(2, thread_name_prefix="cqrs-bench-draw") as pool:
        settling = history.settle(catalog, pool)
        outbox = _Outbox(customers, catalog, history)
        for future in settling:
            future.result()
    render: dict[str, Render] = {
        "customers": customers.columns,
        "products": catalog.product_columns,
        "price_history": catalog.change_columns,
        "orders": history.order_columns,
        "order_lines": history.line_columns,
        "outbox": outbox.columns,
    }
    rows = {
        "customers": scale.customers,
        "products": scale.products,
        "price_history": len(catalog.change_product),
        "orders": scale.orders,
        "order_lines": len(history.line_order),
        "outbox": len(outbox.kind),
    }
    return Dataset(scale, rows, render)


def _ids(part: slice, n: int) -> np.ndarray:
    """The 1-based ids of the rows in `part` of a table of n rows."""
    return np.arange(part.start, min(part.stop, n), dtype=np.int64) + 1


# --- customers and catalog ----------------------------------------------------------------------


class _Customers:
    def __init__(self, scale: Scale, stream: _Stream) -> None:
        n = scale.customers
        self.n = n
        self.first = stream.below(len(FIRST_NAMES), n)
        self.last = stream.below(len(LAST_NAMES), n)

    def names(self, ids: np.ndarray) -> pa.Array:
        return ct.concat(
            ct.take(FIRST_NAMES, self.first[ids - 1]), " ", ct.take(LAST_NAMES, self.last[ids - 1])
        )

    def emails(self, ids: np.ndarray) -> pa.Array:
        first = ct.take([w.lower() for w in FIRST_NAMES], self.first[ids - 1])
        last = ct.take([w.lower() for w in LAST_NAMES], self.last[ids - 1])
        return ct.concat(first, ".", last, ".", ids, "@example.com")

    def columns(self, part: slice) -> list:
        ids = _ids(part, self.n)
        setup = ct.timestamps(np.full(len(ids), SETUP_MS, dtype=np.int64))
        return [ids, self.names(ids), self.emails(ids), setup]


class _Catalog:
    """Products (arrays indexed by id - 1) and their price changes (in time order) and removals.

    A product is either discontinued once or has its price changed 1 to 3 times, or neither.
    """

    def __init__(self, scale: Scale, stream: _Stream) -> None:
        n = self.n = scale.products
        self.adjective = stream.below(len(ADJECTIVES), n)
        self.material = stream.below(len(MATERIALS), n)
        self.noun = stream.below(len(NOUNS), n)
        self.category = stream.below(scale.categories, n)
        lo, hi = math.log(PRICE_RANGE[0]), math.log(PRICE_RANGE[1])
        self.first_price = np.rint(np.exp(lo + (hi - lo) * stream.random(n))).astype(np.int64)
        low = stream.random(n) < LOW_STOCK_SHARE
        self.stock = np.where(low, stream.below(51, n), 50 + stream.below(451, n))
        order = stream.permutation(n)
        n_gone, n_changed = round(DISCONTINUED_SHARE * n), round(PRICE_CHANGED_SHARE * n)
        self.gone_at = np.full(n, np.iinfo(np.int64).max)  # ms from START; never by default
        self.gone_at[order[:n_gone]] = stream.below(_SPAN_MS, n_gone)
        self._draw_changes(stream, np.sort(order[n_gone : n_gone + n_changed]))

    def _draw_changes(self, stream: _Stream, changed: np.ndarray) -> None:
        """1 to 3 changes of -30%..+40% per changed product, at random times; in time order."""
        per_product = 1 + stream.below(3, len(changed))
        product = np.repeat(changed, per_product)
        at = stream.below(_SPAN_MS, len(product))
        factor = np.exp(math.log(0.7) + (math.log(1.4) - math.log(0.7)) * stream.random(len(at)))
        reason = stream.below(len(PRICE_REASONS), len(at))
        chain = np.lexsort((at, product))  # each product's changes in time order
        product, at, factor, reason = product[chain], at[chain], factor[chain], reason[chain]
        step = np.arange(len(product)) - np.repeat(
            np.cumsum(per_product) - per_product, per_product
        )
        old = np.zeros(len(product), dtype=np.int64)
        new = np.zeros(len(product), dtype=np.int64)
        current = self.first_price.copy()
        for k in range(3):  # each product's k-th change starts from the price its (k-1)-th left
            now = np.flatnonzero(step == k)
            old[now] = current[product[now]]
            moved = np.clip(np.rint(old[now] * factor[now]), *PRICE_RANGE).astype(np.int64)
            same = moved == old[now]
            moved[same] += np.where(moved[same] < PRICE_RANGE[1], 1, -1)
            new[now] = current[product[now]] = moved
        self.change_version = step + 2  # a product's changes are its versions 2, 3, 4
        timeline = np.lexsort((product, at))  # price_history ids: (time, product) order
        self.change_product = product[timeline]
        self.change_at = at[timeline]
        self.change_old, self.change_new = old[timeline], new[timeline]
        self.change_reason, self.change_version = reason[timeline], self.change_version[timeline]
        self.final_price = current
        self.versions = 1 + np.bincount(product, minlength=self.n)
        self.versions[self.gone_at < _SPAN_MS] += 1

    def price_at(self, product: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Each product's price at each time (changes at that very time included)."""
        by_product = np.lexsort((self.change_at, self.change_product))
        keys = self.change_product[by_product] * (_SPAN_MS + 1) + self.change_at[by_product]
        latest = np.searchsorted(keys, product * (_SPAN_MS + 1) + at, side="right") - 1
        found = latest >= 0
        found[found] &= self.change_product[by_product][latest[found]] == product[found]
        price = self.first_price[product].copy()
        price[found] = self.change_new[by_product][latest[found]]
        return price

    def names(self, index: np.ndarray) -> pa.Array:
        return ct.concat(
            ct.take(ADJECTIVES, self.adjective[index]),
            " ",
            ct.take(MATERIALS, self.material[index]),
            " ",
            ct.take(NOUNS, self.noun[index]),
        )

    def skus(self, ids: np.ndarray) -> pa.Array:
        return ct.concat("SKU-", ct.text(np.char.zfill(ids.astype(str), 7)))

    def product_columns(self, part: slice) -> list:
        ids = _ids(part, self.n)
        index = ids - 1
        status = np.where(self.gone_at[index] < _SPAN_MS, "discontinued", "active")
        return [
            ids,
            self.skus(ids),
            self.names(index),
            ct.take(CATEGORIES, self.category[index]),
            self.final_price[index],
            self.final_stock[index],
            ct.text(pa.array(status)),
            self.versions[index],
        ]

    def change_columns(self, part: slice) -> list:
        ids = _ids(part, len(self.change_product))
        index = ids - 1
        return [
            ids,
            self.change_product[index] + 1,
            self.change_old[index],
            self.change_new[index],
            ct.take(PRICE_REASONS, self.change_reason[index]),
            ct.timestamps(START_MS + self.change_at[index]),
        ]


# --- the order history --------------------------------------------------------------------------


class _History:
    """Orders and their lines (arrays by order index / line index), their outcomes, and the stock
    the catalog must have started with (set on the catalog as first_stock and final_stock)."""

    def __init__(self, scale: Scale, catalog: _Catalog, stream: _Stream) -> None:
        n = self.n = scale.orders
        self.seed = scale.seed
        q = (np.arange(n) + stream.random(n)) / n  # stratified: the times come out sorted
        self.at = (np.log1p(q * (GROWTH - 1)) / math.log(GROWTH) * _SPAN_MS).astype(np.int64)
        self.customer = _Zipf(stream, scale.customers, CUSTOMER_ZIPF_S).pick(n)
        wanted = 1 + stream.weighted(np.array(LINE_WEIGHTS, dtype=np.float64), n)
        self._draw_lines(stream, catalog, wanted)
        self.quantity = 1 + stream.weighted(
            np.array(QUANTITY_WEIGHTS, dtype=np.float64), len(self.line_order)
        )
        self._draw_outcomes(stream)

    def settle(self, catalog: _Catalog, pool: ThreadPoolExecutor) -> list[Future]:
        """What needs no more randomness, in threads (NumPy's sorts and searches release the
        GIL): each line's price and each order's total; the catalog's stock."""
        return [pool.submit(self._price, catalog), pool.submit(self._settle_stock, catalog)]

    def _price(self, catalog: _Catalog) -> None:
        self.unit_price = catalog.price_at(self.line_product, self.at[self.line_order])
        self.total = np.bincount(
            self.line_order, weights=self.quantity * self.unit_price, minlength=self.n
        ).astype(np.int64)

    def _draw_lines(self, stream: _Stream, catalog: _Catalog, wanted: np.ndarray) -> None:
        """Up to `wanted` distinct products per order, active when it is placed, popular ones
        most often: unusable picks are drawn again, at most 50 times, then dropped."""
        products = _Zipf(stream, catalog.n, PRODUCT_ZIPF_S)
        order = np.repeat(np.arange(self.n), wanted)
        product = products.pick(len(order)) - 1
        bad = self._unusable(order, product, catalog)
        for _attempt in range(50):
            if not bad.any():
                break
            product[bad] = products.pick(int(bad.sum())) - 1
            touched = np.zeros(self.n, dtype=bool)  # only their orders' lines can have changed
            touched[order[bad]] = True
            lines = np.flatnonzero(touched[order])
            bad = np.zeros(len(order), dtype=bool)
            bad[lines] = self._unusable(order[lines], product[lines], catalog)
        self.line_order, self.line_product = order[~bad], product[~bad]
        self.lines = np.bincount(self.line_order, minlength=self.n)
        if (self.lines == 0).any():
            raise AssertionError("no active product found to order")
        self.first_line = np.cumsum(self.lines) - self.lines
        self.line_no = np.arange(len(self.line_order)) - self.first_line[self.line_order] + 1

    def _unusable(self, order: np.ndarray, product: np.ndarray, catalog: _Catalog) -> np.ndarray:
        """Lines whose product is discontinued at the order's time or repeats an earlier line's."""
        gone = catalog.gone_at[product] <= self.at[order]
        key = order * catalog.n + product
        by_key = np.argsort(key, kind="stable")
        repeat = np.zeros(len(key), dtype=bool)
        repeat[by_key[1:]] = key[by_key[1:]] == key[by_key[:-1]]
        return gone | repeat

    def _draw_outcomes(self, stream: _Stream) -> None:
        """Shipped (90%) or cancelled (5%) 1h..48h later (later more likely), unless that is
        past the anchor; else placed. kind: index into STATUSES."""
        u, late = stream.random(self.n), stream.random(self.n)
        delay_us = 3_600_000_000 + (47 * 3_600_000_000 * np.sqrt(late)).astype(np.int64)
        self.done_at = self.at + delay_us // 1_000
        self.kind = np.where(u < SHIP_P, 1, np.where(u < SHIP_P + CANCEL_P, 2, 0))
        self.kind[self.done_at >= _SPAN_MS] = 0

    def _settle_stock(self, catalog: _Catalog) -> None:
        """Units out per product over time: + at a placement, - at a cancellation (first at one
        instant); first stock = final stock + units kept, final stock raised to the peak's need."""
        cancelled = self.kind[self.line_order] == 2
        product = np.r_[self.line_product, self.line_product[cancelled]]
        at = np.r_[self.at[self.line_order], self.done_at[self.line_order][cancelled]]
        first = np.r_[np.ones(len(self.line_order)), np.zeros(int(cancelled.sum()))]
        delta = np.r_[self.quantity, -self.quantity[cancelled]]
        order = np.argsort((product * _SPAN_MS + at) * 2 + first, kind="stable")  # one key
        product, delta = product[order], delta[order]
        out = np.cumsum(delta)
        starts = np.flatnonzero(np.r_[True, product[1:] != product[:-1]]) if len(product) else []
        before = np.repeat(out[starts] - delta[starts], np.diff(np.r_[starts, len(product)]))
        peak = np.zeros(catalog.n, dtype=np.int64)
        if len(product):
            peak[product[starts]] = np.maximum(np.maximum.reduceat(out - before, starts), 0)
        kept = np.bincount(product, weights=delta, minlength=catalog.n).astype(np.int64)
        catalog.final_stock = np.maximum(catalog.stock, peak - kept)
        catalog.first_stock = catalog.final_stock + kept

    def order_columns(self, part: slice) -> list:
        ids = _ids(part, self.n)
        index = ids - 1
        return [
            ids,
            self.customer[index],
            ct.take(STATUSES, self.kind[index]),
            self.total[index],
            ct.timestamps(START_MS + self.at[index]),
            ct.concat(f"seed{self.seed}-order", ids),
            np.where(self.kind[index] == 0, 1, 2),
        ]

    def line_columns(self, part: slice) -> list:
        index = _ids(part, len(self.line_order)) - 1
        return [
            self.line_order[index] + 1,
            self.line_no[index],
            self.line_product[index] + 1,
            self.quantity[index],
            self.unit_price[index],
        ]

    def placed_lines(self, orders: np.ndarray) -> pa.Array:
        """The OrderPlaced `lines` JSON of these orders."""
        counts = self.lines[orders]
        start = np.repeat(self.first_line[orders] - (np.cumsum(counts) - counts), counts)
        index = start + np.arange(int(counts.sum()))
        items = ct.json_objects(
            ev.PlacedLine,
            {
                "line_no": self.line_no[index],
                "product_id": self.line_product[index] + 1,
                "quantity": self.quantity[index],
                "unit_price_cents": self.unit_price[index],
            },
        )
        return ct.json_lists(items, counts)


# --- the outbox ---------------------------------------------------------------------------------

EVENTS = (
    ev.CustomerRegistered,
    ev.ProductAdded,
    ev.ProductPriceChanged,
    ev.ProductDiscontinued,
    ev.OrderShipped,
    ev.OrderCancelled,
    ev.OrderPlaced,
)


class _Outbox:
    """Every event, in the order the outbox holds them: each event's kind (index into EVENTS), the
    index of its row in its source (customer, product, price change or order) and its time."""

    def __init__(self, customers: _Customers, catalog: _Catalog, history: _History) -> None:
        self.customers, self.catalog, self.history = customers, catalog, history
        gone = np.flatnonzero(catalog.gone_at < _SPAN_MS)
        closed = np.flatnonzero(history.kind != 0)
        placed = np.arange(history.n)
        parts = [  # (kind, source rows, time, rank at one instant)
            (2, np.arange(len(catalog.change_product)), catalog.change_at, 0),
            (3, gone, catalog.gone_at[gone], 0),
            (None, closed, history.done_at[closed], 1),
            (6, placed, history.at, 2),
        ]
        kind = np.concatenate(
            [np.full(len(rows), k) if k else 3 + history.kind[rows] for k, rows, *_ in parts]
        )
        source = np.concatenate([rows for _k, rows, *_ in parts])
        at = np.concatenate([times for _k, _rows, times, _rank in parts])
        rank = np.concatenate([np.full(len(rows), r) for _k, rows, _t, r in parts])
        ids = source.copy()  # at one instant and rank: by product, else by order
        ids[kind == 2] = catalog.change_product[source[kind == 2]]
        order = np.argsort((at * 3 + rank) * (max(history.n, catalog.n) + 1) + ids, kind="stable")
        setup = [np.arange(customers.n), np.arange(catalog.n)]
        self.kind = np.r_[np.zeros(customers.n, int), np.ones(catalog.n, int), kind[order]]
        self.source = np.r_[setup[0], setup[1], source[order]]
        self.at = np.r_[np.full(customers.n + catalog.n, SETUP_MS), START_MS + at[order]]

    def columns(self, part: slice) -> list:
        kinds, sources = self.kind[part], self.source[part]
        payloads, rows = [], []
        for kind in np.unique(kinds):
            where = np.flatnonzero(kinds == kind)
            payloads.append(self._payloads(int(kind), sources[where]))
            rows.append(where)
        back = np.argsort(np.concatenate(rows), kind="stable")
        return [
            ct.take([cls.__name__ for cls in EVENTS], kinds),
            pa.concat_arrays(payloads).take(pa.array(back)),
            ct.timestamps(self.at[part]),
        ]

    def _payloads(self, kind: int, rows: np.ndarray) -> pa.Array:
        cls, catalog, history = EVENTS[kind], self.catalog, self.history
        if cls is ev.CustomerRegistered:
            ids = rows + 1
            values = {
                "customer_id": ids,
                "name": self.customers.names(ids),
                "email": self.customers.emails(ids),
            }
            return ct.json_objects(cls, values, strings=("name", "email"))
        if cls is ev.ProductAdded:
            values = {
                "product_id": rows + 1,
                "sku": catalog.skus(rows + 1),
                "name": catalog.names(rows),
                "category": ct.take(CATEGORIES, catalog.category[rows]),
                "price_cents": catalog.first_price[rows],
                "stock": catalog.first_stock[rows],
            }
            return ct.json_objects(cls, values, strings=("sku", "name", "category"))
        if cls is ev.ProductPriceChanged:
            values = {
                "product_id": catalog.change_product[rows] + 1,
                "old_price_cents": catalog.change_old[rows],
                "new_price_cents": catalog.change_new[rows],
                "reason": ct.take(PRICE_REASONS, catalog.change_reason[rows]),
                "version": catalog.change_version[rows],
            }
            return ct.json_objects(cls, values, strings=("reason",))
        if cls is ev.ProductDiscontinued:
            values = {
                "product_id": rows + 1,
                "price_cents": catalog.final_price[rows],
                "version": catalog.versions[rows],
            }
            return ct.json_objects(cls, values)
        if cls is ev.OrderPlaced:
            values = {
                "order_id": rows + 1,
                "customer_id": history.customer[rows],
                "total_cents": history.total[rows],
                "lines": history.placed_lines(rows),
            }
            return ct.json_objects(cls, values)
        return ct.json_objects(cls, {"order_id": rows + 1, "version": np.full(len(rows), 2)})
