"""The seeded dataset: 90 days of order history as write-model rows and as outbox events.

Pure generation, no SQL. `generate(sf, seed)` walks the history in time order once and renders
every row in PostgreSQL's COPY text format, exactly as the server prints it back (timestamps in
UTC, jsonb keys in jsonb order), so a loaded table can be checked byte for byte. The checksum is
sha256 over each table's name line and rows, tables in `TABLES` order.

Every draw comes from `random.Random.random()`, the one method whose sequence Python promises to
keep across versions: integers, shuffles and weighted picks (bisect over cumulative weights, as
`random.choices(cum_weights=...)` does it) are built on it here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from heapq import heappop, heappush
from itertools import accumulate

from implementations.domain import events as ev
from implementations.write_model import SCHEMA_VERSION

GENERATOR_VERSION = 2  # bump when the generated rows change: templates are keyed by it
RANDOM_STREAMS = 1  # names the random streams: kept, so that a seed keeps drawing the same rows
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 90
MAX_SF = 100.0
MAX_SEED = 2**31 - 1

_MS = 1_000
_HOUR = 3_600_000_000
_DAY = 24 * _HOUR
ANCHOR_US = int(ANCHOR.timestamp()) * 1_000_000
START_US = ANCHOR_US - HISTORY_DAYS * _DAY  # first possible order
SETUP_US = START_US - _DAY  # customers registered, products added

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


# --- COPY text ----------------------------------------------------------------------------------


@cache
def _hour_text(hour: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(hours=hour)).strftime("%Y-%m-%d %H:")


def timestamp_text(us: int) -> str:
    """Microseconds since the epoch as PostgreSQL prints a timestamptz in UTC."""
    seconds, fraction = divmod(us, 1_000_000)
    hour, second = divmod(seconds, 3_600)
    text = f"{_hour_text(hour)}{second // 60:02d}:{second % 60:02d}"
    if fraction:
        text += f".{fraction:06d}".rstrip("0")
    return text + "+00"


def _escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        text = text.replace("\r", "\\r")
    return text


_JSON = json.JSONEncoder(ensure_ascii=False)


@cache
def _jsonb_fields(cls: type) -> tuple[str, ...]:
    """A dataclass's fields in the order jsonb stores and prints keys: shorter first, then bytes."""
    names = (f.name for f in dataclasses.fields(cls))
    return tuple(sorted(names, key=lambda k: (len(k.encode()), k.encode())))


def _plain(obj: object) -> dict[str, object]:
    """events.to_payload(obj) with keys in jsonb order (events are flat or hold tuples of such)."""
    out: dict[str, object] = {}
    for name in _jsonb_fields(type(obj)):
        value = getattr(obj, name)
        out[name] = [_plain(v) for v in value] if isinstance(value, tuple) else value
    return out


def payload_text(event: ev.Event) -> str:
    """events.to_payload(event) as jsonb prints it."""
    return _JSON.encode(_plain(event))


def _order_placed_text(order_id: int, customer_id: int, total: int, lines: list[str]) -> str:
    """payload_text(OrderPlaced(...)) for the hot path; lines from _placed_line_text."""
    return (
        f'{{"lines": [{", ".join(lines)}], "order_id": {order_id}, '
        f'"customer_id": {customer_id}, "total_cents": {total}}}'
    )


def _placed_line_text(line_no: int, product_id: int, quantity: int, unit_price: int) -> str:
    return (
        f'{{"line_no": {line_no}, "quantity": {quantity}, "product_id": {product_id}, '
        f'"unit_price_cents": {unit_price}}}'
    )


def _order_status_text(order_id: int, version: int) -> str:
    """payload_text(OrderShipped(...)) and of OrderCancelled."""
    return f'{{"version": {version}, "order_id": {order_id}}}'


def _check_fast_payloads() -> None:
    """The hand-written payloads above must stay equal to events.to_payload in jsonb order."""
    line = ev.PlacedLine(1, 22, 3, 4444)
    placed = ev.OrderPlaced(7, 8, 13332, (line, line))
    line_text = _placed_line_text(1, 22, 3, 4444)
    fast = {
        "OrderPlaced": (placed, _order_placed_text(7, 8, 13332, [line_text, line_text])),
        "OrderShipped": (ev.OrderShipped(7, 2), _order_status_text(7, 2)),
        "OrderCancelled": (ev.OrderCancelled(7, 2), _order_status_text(7, 2)),
    }
    for name, (event, text) in fast.items():
        if payload_text(event) != text:
            raise AssertionError(f"the generator's {name} payload no longer matches events.py")


class _Table:
    """One table's rows as COPY text, joined into chunks of bytes as they come."""

    CHUNK_ROWS = 8192

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.rows = 0
        self._pending: list[str] = []

    def add(self, *fields: int | str) -> None:
        """One row; text fields are escaped."""
        self.add_text("\t".join(_escape(f) if isinstance(f, str) else str(f) for f in fields))

    def add_text(self, row: str) -> None:
        """One row already in COPY text form, without its newline."""
        self._pending.append(row)
        if len(self._pending) >= self.CHUNK_ROWS:
            self._flush()

    def add_event(self, event: ev.Event, at_us: int) -> None:
        self.add_payload(ev.event_type(event), payload_text(event), timestamp_text(at_us))

    def add_payload(self, event_type: str, payload: str, at_text: str) -> None:
        self.add_text(f"{event_type}\t{_escape(payload)}\t{at_text}")

    def _flush(self) -> None:
        if self._pending:
            self.rows += len(self._pending)
            self.chunks.append(("\n".join(self._pending) + "\n").encode())
            self._pending = []

    def finish(self) -> _Table:
        self._flush()
        return self

    def extend(self, other: _Table) -> _Table:
        self.finish().chunks += other.finish().chunks
        self.rows += other.rows
        return self


# --- the dataset -------------------------------------------------------------------------------


@dataclass
class Dataset:
    scale: Scale
    tables: dict[str, list[bytes]]  # COPY text chunks, in TABLES (load) order
    rows: dict[str, int]
    checksum: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for name, chunks in self.tables.items():
            digest.update(f"{name}\n".encode())
            for chunk in chunks:
                digest.update(chunk)
        self.checksum = digest.hexdigest()

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def text(self, table: str) -> str:
        """A table's COPY text (for tests and inspection; loading streams the chunks)."""
        return b"".join(self.tables[table]).decode()

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
    _check_fast_payloads()
    customers = _customers(scale, _rng(seed, "customers"))
    catalog = _Catalog.generate(scale, _rng(seed, "catalog"))
    history = _History(scale, catalog, _rng(seed, "orders"))
    history.run()
    tables = {
        "customers": _customer_rows(customers),
        "products": _product_rows(catalog, history.final_prices(), history.versions),
        "price_history": catalog.price_history_rows(),
        "orders": history.orders,
        "order_lines": history.lines,
        "outbox": _registrations(customers, catalog, history.units_kept).extend(history.events),
    }
    tables = {name: table.finish() for name, table in tables.items()}
    return Dataset(
        scale, {k: t.chunks for k, t in tables.items()}, {k: t.rows for k, t in tables.items()}
    )


# --- randomness: random() only ------------------------------------------------------------------


def _rng(seed: int, part: str) -> random.Random:
    """An independent stream per part, so changing one part leaves the others' rows alone."""
    return random.Random(f"cqrs-bench/{RANDOM_STREAMS}/{seed}/{part}")


def _below(rng: random.Random, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[_below(rng, len(options))]


def _permutation(rng: random.Random, n: int) -> list[int]:
    """0..n-1 shuffled (Fisher-Yates on random())."""
    items = list(range(n))
    for i in range(n - 1, 0, -1):
        j = _below(rng, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def _weighted(rng: random.Random, population: Sequence[int], weights: Sequence[float]):
    """One draw per call, as random.choices(population, cum_weights=...) draws it."""
    cum = list(accumulate(weights))
    rnd, total, hi = rng.random, cum[-1] + 0.0, len(cum) - 1
    return lambda: population[bisect(cum, rnd() * total, 0, hi)]


def _zipf(rng: random.Random, n: int, s: float):
    """Ids 1..n, the most popular first in a seeded permutation (weight 1/rank**s)."""
    ids = [i + 1 for i in _permutation(rng, n)]
    return _weighted(rng, ids, [1.0 / rank**s for rank in range(1, n + 1)])


# --- customers and catalog ----------------------------------------------------------------------


def _customers(scale: Scale, rng: random.Random) -> list[tuple[str, str]]:
    people = []
    for cid in range(1, scale.customers + 1):
        first, last = _pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)
        people.append((f"{first} {last}", f"{first}.{last}.{cid}@example.com".lower()))
    return people


def _customer_rows(customers: list[tuple[str, str]]) -> _Table:
    table = _Table()
    for cid, (name, email) in enumerate(customers, start=1):
        table.add(cid, name, email, timestamp_text(SETUP_US))
    return table


def _registrations(
    customers: list[tuple[str, str]], catalog: _Catalog, units_kept: list[int]
) -> _Table:
    """The outbox's first events: everyone registered, every product added with its first stock."""
    outbox = _Table()
    for cid, (name, email) in enumerate(customers, start=1):
        outbox.add_event(ev.CustomerRegistered(cid, name, email), SETUP_US)
    for p in range(1, len(catalog.skus)):
        added = ev.ProductAdded(
            p,
            catalog.skus[p],
            catalog.names[p],
            catalog.categories[p],
            catalog.first_prices[p],
            catalog.final_stock[p] + units_kept[p],
        )
        outbox.add_event(added, SETUP_US)
    return outbox


@dataclass(frozen=True)
class PriceChange:
    at_us: int
    product_id: int
    old_price_cents: int
    new_price_cents: int
    reason: str


@dataclass
class _Catalog:
    """Products (lists indexed by id, index 0 unused) and their price changes and removals."""

    skus: list[str]
    names: list[str]
    categories: list[str]
    first_prices: list[int]
    final_stock: list[int]  # raised by _History where cancellations need it
    discontinued_at: dict[int, int]
    changes: list[PriceChange]  # in time order

    @classmethod
    def generate(cls, scale: Scale, rng: random.Random) -> _Catalog:
        n, lo, hi = scale.products, math.log(PRICE_RANGE[0]), math.log(PRICE_RANGE[1])
        names, categories, prices, stock = [""], [""], [0], [0]
        for _ in range(n):
            names.append(f"{_pick(rng, ADJECTIVES)} {_pick(rng, MATERIALS)} {_pick(rng, NOUNS)}")
            categories.append(CATEGORIES[_below(rng, scale.categories)])
            prices.append(round(math.exp(lo + (hi - lo) * rng.random())))
            low = rng.random() < LOW_STOCK_SHARE
            stock.append(_below(rng, 51) if low else 50 + _below(rng, 451))
        order = [p + 1 for p in _permutation(rng, n)]
        n_gone, n_changed = round(DISCONTINUED_SHARE * n), round(PRICE_CHANGED_SHARE * n)
        gone = {p: _random_time(rng, ANCHOR_US) for p in order[:n_gone]}
        changes = [
            change
            for p in sorted(order[n_gone : n_gone + n_changed])
            for change in _price_changes(rng, p, prices[p], gone.get(p, ANCHOR_US))
        ]
        changes.sort(key=lambda c: (c.at_us, c.product_id))
        skus = [""] + [f"SKU-{p:07d}" for p in range(1, n + 1)]
        return cls(skus, names, categories, prices, stock, gone, changes)

    def price_history_rows(self) -> _Table:
        table = _Table()
        for hid, c in enumerate(self.changes, start=1):
            table.add(
                hid,
                c.product_id,
                c.old_price_cents,
                c.new_price_cents,
                c.reason,
                timestamp_text(c.at_us),
            )
        return table


def _random_time(rng: random.Random, before_us: int) -> int:
    """A whole millisecond in [START_US, before_us)."""
    return START_US + _below(rng, (before_us - START_US) // _MS) * _MS


def _price_changes(rng: random.Random, product_id: int, price: int, before_us: int):
    """1 to 3 changes of -30%..+40% at random times before `before_us`."""
    times = sorted(_random_time(rng, before_us) for _ in range(1 + _below(rng, 3)))
    changes = []
    for at_us in times:
        factor = math.exp(math.log(0.7) + (math.log(1.4) - math.log(0.7)) * rng.random())
        new = min(max(round(price * factor), PRICE_RANGE[0]), PRICE_RANGE[1])
        new = new if new != price else (new + 1 if new < PRICE_RANGE[1] else new - 1)
        changes.append(PriceChange(at_us, product_id, price, new, _pick(rng, PRICE_REASONS)))
        price = new
    return changes


def _product_rows(catalog: _Catalog, prices: list[int], versions: list[int]) -> _Table:
    table = _Table()
    for p in range(1, len(catalog.skus)):
        status = "discontinued" if p in catalog.discontinued_at else "active"
        table.add(
            p,
            catalog.skus[p],
            catalog.names[p],
            catalog.categories[p],
            prices[p],
            catalog.final_stock[p],
            status,
            versions[p],
        )
    return table


# --- the order history --------------------------------------------------------------------------


def _order_time(i: int, n: int, u: float) -> int:
    """The i-th of n order times (0-based), stratified so they come out sorted.

    The rate grows exponentially to GROWTH times its first value; the last order falls in the
    last 1/n of the distribution, so there is recent activity (at sf 1, in the last minutes).
    """
    q = (i + u) / n
    x = math.log1p(q * (GROWTH - 1)) / math.log(GROWTH)
    return START_US + int(x * (HISTORY_DAYS * _DAY // _MS)) * _MS


class _History:
    """Walks the 90 days once, in time order: orders, ships, cancels, price changes, removals.

    Versions, as the write model's commands keep them: a product starts at 1 and each price change
    or discontinuation bumps it (in the order its events are written); an order is placed at 1 and
    shipped or cancelled at 2.

    Stock: `out[p]` counts the units of product p in orders not (yet) cancelled. At the end that is
    the units kept, and first stock = final stock + units kept. Final stock is raised where a
    cancelled order once held more units than were left, so stock never goes negative.
    """

    def __init__(self, scale: Scale, catalog: _Catalog, rng: random.Random) -> None:
        self.scale, self.catalog, self.rng = scale, catalog, rng
        self.orders, self.lines, self.events = _Table(), _Table(), _Table()
        self.price = list(catalog.first_prices)
        self.versions = [1] * (scale.products + 1)
        self.gone: set[int] = set()
        self.out = [0] * (scale.products + 1)
        self.peak_out = [0] * (scale.products + 1)
        self.pending: list[tuple[int, int, str, list[tuple[int, int]]]] = []  # ships, cancels
        self.timeline = self._catalog_timeline()
        self.pick_product = _zipf(rng, scale.products, PRODUCT_ZIPF_S)
        self.pick_customer = _zipf(rng, scale.customers, CUSTOMER_ZIPF_S)
        self.pick_line_count = _weighted(rng, range(1, 9), LINE_WEIGHTS)
        self.pick_quantity = _weighted(rng, range(1, 6), QUANTITY_WEIGHTS)

    @property
    def units_kept(self) -> list[int]:
        return self.out

    def final_prices(self) -> list[int]:
        return self.price

    def _catalog_timeline(self) -> list[tuple[int, int, PriceChange | None]]:
        """Price changes and discontinuations (None), latest first (popped from the end)."""
        items: list[tuple[int, int, PriceChange | None]] = [
            (c.at_us, c.product_id, c) for c in self.catalog.changes
        ]
        items += [(at, p, None) for p, at in self.catalog.discontinued_at.items()]
        items.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return items

    def run(self) -> None:
        n = self.scale.orders
        for i in range(n):
            at_us = _order_time(i, n, self.rng.random())
            self._advance(at_us)
            self._place(i + 1, at_us)
        self._advance(ANCHOR_US)
        self._settle_stock()

    def _advance(self, until_us: int) -> None:
        """Apply every scheduled event at or before until_us, in time order (catalog first)."""
        timeline, pending = self.timeline, self.pending
        while True:
            t_at = timeline[-1][0] if timeline else ANCHOR_US + 1
            p_at = pending[0][0] if pending else ANCHOR_US + 1
            if t_at <= until_us and t_at <= p_at:
                self._apply_catalog(*timeline.pop())
            elif p_at <= until_us:
                self._apply_outcome(*heappop(pending))
            else:
                return

    def _apply_catalog(self, at_us: int, product_id: int, change: PriceChange | None) -> None:
        self.versions[product_id] += 1
        version = self.versions[product_id]
        if change is None:
            self.gone.add(product_id)
            event = ev.ProductDiscontinued(product_id, self.price[product_id], version)
        else:
            self.price[product_id] = change.new_price_cents
            event = ev.ProductPriceChanged(
                product_id, change.old_price_cents, change.new_price_cents, change.reason, version
            )
        self.events.add_event(event, at_us)

    def _apply_outcome(self, at_us: int, order_id: int, kind: str, lines) -> None:
        for product_id, quantity in lines:  # a cancellation puts the units back
            self.out[product_id] -= quantity
        event_type = "OrderCancelled" if kind == "cancelled" else "OrderShipped"
        payload = _order_status_text(order_id, 2)  # placed at version 1
        self.events.add_payload(event_type, payload, timestamp_text(at_us))

    def _place(self, order_id: int, at_us: int) -> None:
        customer_id = self.pick_customer()
        products = self._distinct_products(self.pick_line_count())
        lines = [(p, self.pick_quantity(), self.price[p]) for p in products]
        total = sum(quantity * price for _p, quantity, price in lines)
        status = self._schedule_outcome(order_id, at_us, lines)
        placed_at = timestamp_text(at_us)
        self.orders.add_text(
            f"{order_id}\t{customer_id}\t{status}\t{total}\t{placed_at}\t"
            f"seed{self.scale.seed}-order{order_id}\t{1 if status == 'placed' else 2}"
        )
        payload_lines = []
        for line_no, (p, quantity, price) in enumerate(lines, start=1):
            self.lines.add_text(f"{order_id}\t{line_no}\t{p}\t{quantity}\t{price}")
            payload_lines.append(_placed_line_text(line_no, p, quantity, price))
            self.out[p] += quantity
            self.peak_out[p] = max(self.peak_out[p], self.out[p])
        payload = _order_placed_text(order_id, customer_id, total, payload_lines)
        self.events.add_payload("OrderPlaced", payload, placed_at)

    def _distinct_products(self, wanted: int) -> list[int]:
        """Up to `wanted` different active products, popular ones most often."""
        chosen: list[int] = []
        for _attempt in range(wanted * 50):
            p = self.pick_product()
            if p not in self.gone and p not in chosen:
                chosen.append(p)
                if len(chosen) == wanted:
                    break
        if not chosen:
            raise AssertionError("no active product found to order")
        return chosen

    def _schedule_outcome(self, order_id: int, at_us: int, lines: list) -> str:
        """Ship or cancel 1h..48h later (later more likely), unless that is past the anchor."""
        u, delay = self.rng.random(), _HOUR + int(47 * _HOUR * self.rng.random() ** 0.5)
        kind = "shipped" if u < SHIP_P else "cancelled" if u < SHIP_P + CANCEL_P else "placed"
        done_at = (at_us + delay) // _MS * _MS
        if kind == "placed" or done_at >= ANCHOR_US:
            return "placed"
        returned = [(p, quantity) for p, quantity, _price in lines] if kind == "cancelled" else []
        heappush(self.pending, (done_at, order_id, kind, returned))
        return kind

    def _settle_stock(self) -> None:
        for p, peak in enumerate(self.peak_out):
            shortfall = peak - self.out[p]  # units of still-open cancelled orders at the peak
            self.catalog.final_stock[p] = max(self.catalog.final_stock[p], shortfall)
