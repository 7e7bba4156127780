"""The HTTP API on every implementation: right statuses for good and bad input; bad input writes
nothing (neither the write model nor the outbox)."""

from __future__ import annotations

import pytest
from conftest import table_digest
from fastapi.testclient import TestClient

from implementations import registry
from implementations.api import create_app

SINCE, UNTIL = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
ORDER = {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 1}]}

BAD_REQUESTS = [
    # (why, method, path, json body or raw text, headers, status, error code)
    (
        "malformed JSON",
        "post",
        "/orders",
        '{"customer_id": 1, "lines": [',
        {},
        422,
        "invalid_input",
    ),
    ("body is not an object", "post", "/orders", "[1, 2]", {}, 422, "invalid_input"),
    (
        "customer id as string",
        "post",
        "/orders",
        {**ORDER, "customer_id": "1"},
        {},
        422,
        "invalid_input",
    ),
    (
        "quantity as float",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 1.5}]},
        {},
        422,
        "invalid_input",
    ),
    ("unknown field", "post", "/orders", {**ORDER, "coupon": "FREE"}, {}, 422, "invalid_input"),
    ("missing lines", "post", "/orders", {"customer_id": 1}, {}, 422, "invalid_input"),
    ("no lines", "post", "/orders", {"customer_id": 1, "lines": []}, {}, 422, "invalid_input"),
    (
        "51 lines",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": i, "quantity": 1} for i in range(1, 52)]},
        {},
        422,
        "invalid_input",
    ),
    (
        "quantity 0",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 0}]},
        {},
        422,
        "invalid_input",
    ),
    (
        "quantity 101",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 101}]},
        {},
        422,
        "invalid_input",
    ),
    (
        "negative quantity",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": 1, "quantity": -3}]},
        {},
        422,
        "invalid_input",
    ),
    (
        "same product twice",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 1}] * 2},
        {},
        422,
        "invalid_input",
    ),
    (
        "id beyond bigint",
        "post",
        "/orders",
        {"customer_id": 2**70, "lines": [{"product_id": 1, "quantity": 1}]},
        {},
        422,
        "invalid_input",
    ),
    (
        "empty idempotency key",
        "post",
        "/orders",
        ORDER,
        {"Idempotency-Key": " "},
        422,
        "invalid_input",
    ),
    ("unknown customer", "post", "/orders", {**ORDER, "customer_id": 999}, {}, 404, "not_found"),
    (
        "unknown product",
        "post",
        "/orders",
        {
            "customer_id": 1,
            "lines": [{"product_id": 1, "quantity": 1}, {"product_id": 999, "quantity": 1}],
        },
        {},
        404,
        "not_found",
    ),
    (
        "discontinued product",
        "post",
        "/orders",
        {
            "customer_id": 1,
            "lines": [{"product_id": 1, "quantity": 1}, {"product_id": 4, "quantity": 1}],
        },
        {},
        409,
        "product_discontinued",
    ),
    (
        "no stock",
        "post",
        "/orders",
        {
            "customer_id": 1,
            "lines": [{"product_id": 2, "quantity": 1}, {"product_id": 3, "quantity": 6}],
        },
        {},
        409,
        "out_of_stock",
    ),
    ("cancel unknown order", "post", "/orders/999999/cancel", None, {}, 404, "not_found"),
    (
        "ship a cancelled order",
        "post",
        "/orders/{cancelled}/ship",
        None,
        {},
        409,
        "invalid_transition",
    ),
    (
        "cancel a cancelled order",
        "post",
        "/orders/{cancelled}/cancel",
        None,
        {},
        409,
        "invalid_transition",
    ),
    (
        "cancel a shipped order",
        "post",
        "/orders/{shipped}/cancel",
        None,
        {},
        409,
        "invalid_transition",
    ),
    ("order id not a number", "post", "/orders/abc/ship", None, {}, 422, "invalid_input"),
    (
        "price zero",
        "post",
        "/products/1/price",
        {"new_price_cents": 0, "reason": "sale"},
        {},
        422,
        "invalid_input",
    ),
    (
        "price as string",
        "post",
        "/products/1/price",
        {"new_price_cents": "10", "reason": "sale"},
        {},
        422,
        "invalid_input",
    ),
    (
        "price without reason",
        "post",
        "/products/1/price",
        {"new_price_cents": 10, "reason": ""},
        {},
        422,
        "invalid_input",
    ),
    (
        "reprice unknown product",
        "post",
        "/products/999/price",
        {"new_price_cents": 10, "reason": "x"},
        {},
        404,
        "not_found",
    ),
    (
        "reprice discontinued",
        "post",
        "/products/4/price",
        {"new_price_cents": 10, "reason": "x"},
        {},
        409,
        "product_discontinued",
    ),
    ("restock zero", "post", "/products/1/restock", {"quantity": 0}, {}, 422, "invalid_input"),
    (
        "restock discontinued",
        "post",
        "/products/4/restock",
        {"quantity": 5},
        {},
        409,
        "product_discontinued",
    ),
    ("discontinue twice", "post", "/products/4/discontinue", None, {}, 409, "product_discontinued"),
    ("discontinue unknown", "post", "/products/999/discontinue", None, {}, 404, "not_found"),
    ("unknown order summary", "get", "/orders/999999", None, {}, 404, "not_found"),
    ("huge order id", "get", f"/orders/{2**70}", None, {}, 404, "not_found"),
    ("unknown customer orders", "get", "/customers/999/orders", None, {}, 404, "not_found"),
    ("limit 0", "get", "/customers/1/orders?limit=0", None, {}, 422, "invalid_input"),
    (
        "naive timestamp",
        "get",
        "/dashboard/sales-by-category?since=2026-01-01T00:00:00&until=2026-01-02T00:00:00",
        None,
        {},
        422,
        "invalid_input",
    ),
    (
        "window backwards",
        "get",
        f"/dashboard/top-products?since={UNTIL}&until={SINCE}",
        None,
        {},
        422,
        "invalid_input",
    ),
    (
        "not a timestamp",
        "get",
        "/dashboard/revenue?since=yesterday&until=today",
        None,
        {},
        422,
        "invalid_input",
    ),
    (
        "bad bucket",
        "get",
        f"/dashboard/revenue?since={SINCE}&until={UNTIL}&bucket=week",
        None,
        {},
        422,
        "invalid_input",
    ),
    (
        "too many minute buckets",
        "get",
        f"/dashboard/revenue?since={SINCE}&until=2026-02-01T00:00:00Z&bucket=minute",
        None,
        {},
        422,
        "invalid_input",
    ),
    (
        "price range backwards",
        "get",
        "/products/search?min_price_cents=10&max_price_cents=5",
        None,
        {},
        422,
        "invalid_input",
    ),
    ("search text with NUL", "get", "/products/search?text=a%00b", None, {}, 422, "invalid_input"),
]


@pytest.fixture
def api(impl):
    with TestClient(create_app(impl), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def history(api):
    """One shipped and one cancelled order, and product 4 discontinued."""
    shipped = api.post("/orders", json=ORDER, headers={"Idempotency-Key": "h-1"}).json()["order_id"]
    cancelled = api.post("/orders", json=ORDER, headers={"Idempotency-Key": "h-2"}).json()[
        "order_id"
    ]
    assert api.post(f"/orders/{shipped}/ship").status_code == 200
    assert api.post(f"/orders/{cancelled}/cancel").status_code == 200
    assert api.post("/products/4/discontinue").status_code == 200
    return {"shipped": shipped, "cancelled": cancelled}


def test_bad_input_gets_its_status_and_writes_nothing(api, history, impl):
    """Every bad request of BAD_REQUESTS, in turn on one started architecture (one set-up per
    architecture, not per request): its status and error code, a reason, and no write."""
    dsn = impl.config.write_dsn
    wrong = []
    for why, method, path, body, headers, status, code in BAD_REQUESTS:
        before = table_digest(dsn)
        kwargs = {"headers": headers}
        if isinstance(body, str):
            kwargs["content"] = body
            kwargs["headers"] = {**headers, "Content-Type": "application/json"}
        elif body is not None:
            kwargs["json"] = body
        response = getattr(api, method)(path.format(**history), **kwargs)
        answer = response.json()
        if (response.status_code, answer.get("error")) != (status, code) or not answer.get(
            "reason"
        ):
            wrong.append(f"{why}: {response.status_code} {response.text}")
        if table_digest(dsn) != before:
            wrong.append(f"{why}: wrote to the database")
    assert not wrong, "\n".join(wrong)


def test_duplicate_idempotency_key_returns_the_first_order_and_writes_nothing(api, impl):
    first = api.post("/orders", json=ORDER, headers={"Idempotency-Key": "dup"})
    assert first.status_code == 201
    before = table_digest(impl.config.write_dsn)
    again = api.post("/orders", json=ORDER, headers={"Idempotency-Key": "dup"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order_id"] == first.json()["order_id"]
    assert table_digest(impl.config.write_dsn) == before


def test_good_requests_answer_from_the_database(api, impl):
    placed = api.post(
        "/orders", json={"customer_id": 2, "lines": [{"product_id": 2, "quantity": 3}]}
    )
    assert placed.status_code == 201
    body = placed.json()
    assert (body["total_cents"], body["item_count"], body["replayed"]) == (2400, 3, False)
    after = {"after": body["token"]} if body["token"] else {}  # read-your-writes on CQRS
    summary = api.get(f"/orders/{body['order_id']}", params=after).json()
    assert summary["customer_name"] == "Alan Turing"
    assert summary["lines"] == [
        {
            "line_no": 1,
            "product_id": 2,
            "sku": "MUG-002",
            "product_name": "Blue Mug 100%",
            "quantity": 3,
            "unit_price_cents": 800,
            "line_total_cents": 2400,
        }
    ]
    mine = api.get("/customers/2/orders", params=after).json()
    assert (mine["order_count"], mine["total_spent_cents"], mine["average_order_cents"]) == (
        1,
        2400,
        2400,
    )
    window = {"since": body["placed_at"], "until": body["placed_at"], **after}
    if impl.refresher is not None:  # materialized views: the explicit wait is a refresh
        impl.refresher.refresh()
    assert api.get("/dashboard/sales-by-category", params=window).json() == [
        {"category": "kitchen", "orders": 1, "units": 3, "revenue_cents": 2400}
    ]
    revenue = api.get("/dashboard/revenue", params={**window, "bucket": "minute"}).json()
    assert [p["revenue_cents"] for p in revenue] == [2400]
    top = api.get("/dashboard/top-products", params={**window, "limit": 1}).json()
    assert [p["product_id"] for p in top] == [2]
    hits = api.get("/products/search", params={"text": "mug", **after}).json()
    assert [(h["product_id"], h["units_sold"]) for h in hits] == [(2, 3)]
    assert (
        api.post("/products/2/price", json={"new_price_cents": 900, "reason": "x"}).json()[
            "price_cents"
        ]
        == 900
    )
    assert api.post("/products/2/restock", json={"quantity": 4}).json()["stock"] == 50 - 3 + 4
    assert api.post(f"/orders/{body['order_id']}/ship").json()["status"] == "shipped"


def test_openapi_describes_every_route(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/orders",
        "/orders/{order_id}",
        "/orders/{order_id}/cancel",
        "/orders/{order_id}/ship",
        "/products/{product_id}/price",
        "/products/{product_id}/discontinue",
        "/products/{product_id}/restock",
        "/customers/{customer_id}/orders",
        "/dashboard/sales-by-category",
        "/dashboard/top-products",
        "/dashboard/revenue",
        "/products/search",
        "/health",
        "/status",
    } <= set(paths)
    assert any(p["name"] == "idempotency-key" for p in paths["/orders"]["post"]["parameters"])


def test_status_reports_the_projection(api, impl):
    status = api.get("/status").json()
    assert status["implementation"] == impl.name
    if impl.projection:
        assert status["projection"]["projector_active"] is True
        assert status["projection"]["checkpoint"] == status["projection"]["head"]
    else:
        assert status["projection"] is None


def _uses_tokens(impl) -> bool:
    """Whether its queries wait for tokens (a projection, a standby): without, reads are current."""
    return impl.projection is not None or registry.architecture(impl.name).reads_standby


def test_a_token_not_covered_in_time_answers_503(api, impl):
    if not _uses_tokens(impl):
        pytest.skip(f"{impl.name} ignores tokens: its reads are never behind its commands")
    impl.queries.wait_bound = 0.2
    # a token far ahead: an outbox position, or a WAL position, not reached
    token = "FFFFFFF/0" if registry.architecture(impl.name).reads_standby else "999999999:1"
    response = api.get("/orders/1", params={"after": token})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "had not caught up" in response.json()["reason"]


def test_a_malformed_token_answers_422_where_tokens_are_used(api, impl):
    response = api.get("/orders/999", params={"after": "not-a-token"})
    # Where reads are always current tokens are ignored: the unknown order.
    assert response.status_code == (422 if _uses_tokens(impl) else 404)


MAX_ID = 2**63 - 1  # ids are PostgreSQL bigint
WINDOW = f"since={SINCE}&until={UNTIL}"


def _lines(n: int, quantity: int = 1) -> dict:
    return {
        "customer_id": 1,
        "lines": [{"product_id": i, "quantity": quantity} for i in range(1, n + 1)],
    }


def test_openapi_declares_the_ranges_the_domain_enforces(api):
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def field(model: str, name: str) -> dict:
        return schemas[model]["properties"][name]

    def param(path: str, method: str, name: str) -> dict:
        (found,) = [p for p in spec["paths"][path][method]["parameters"] if p["name"] == name]
        schema = found["schema"]
        return next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)

    ids = {"minimum": 1, "format": "int64"}  # a positive bigint
    assert field("PlaceOrderBody", "customer_id").items() >= ids.items()
    assert field("PlaceOrderBody", "lines").items() >= {"minItems": 1, "maxItems": 50}.items()
    assert field("LineBody", "product_id").items() >= ids.items()
    assert field("LineBody", "quantity").items() >= {"minimum": 1, "maximum": 100}.items()
    assert (
        field("PriceBody", "new_price_cents").items()
        >= {"minimum": 1, "maximum": 100_000_000}.items()
    )
    assert field("PriceBody", "reason").items() >= {"minLength": 1, "maxLength": 200}.items()
    assert field("RestockBody", "quantity").items() >= {"minimum": 1, "maximum": 1_000_000}.items()
    assert param("/orders", "post", "idempotency-key")["maxLength"] == 200
    for path, name in (
        ("/orders/{order_id}/cancel", "order_id"),
        ("/orders/{order_id}/ship", "order_id"),
        ("/products/{product_id}/price", "product_id"),
        ("/products/{product_id}/discontinue", "product_id"),
        ("/products/{product_id}/restock", "product_id"),
    ):
        assert param(path, "post", name).items() >= ids.items(), path
    assert param("/customers/{customer_id}/orders", "get", "customer_id").items() >= ids.items()
    for path in ("/customers/{customer_id}/orders", "/dashboard/top-products", "/products/search"):
        assert param(path, "get", "limit").items() >= {"minimum": 1, "maximum": 100}.items(), path
    for name in ("min_price_cents", "max_price_cents"):
        assert (
            param("/products/search", "get", name).items()
            >= {"minimum": 0, "maximum": 10**12}.items()
        )
    for name in ("category", "text"):
        assert (
            param("/products/search", "get", name).items()
            >= {"minLength": 1, "maxLength": 100}.items()
        )


# (what, method, path, json body, headers): at each declared bound, then just beyond it.
AT_AND_BEYOND = [
    ("1 line", "post", "/orders", _lines(1), {}),
    ("0 lines", "post", "/orders", _lines(0), {}),
    ("50 lines", "post", "/orders", _lines(50), {}),
    ("51 lines", "post", "/orders", _lines(51), {}),
    ("quantity 1", "post", "/orders", _lines(1, quantity=1), {}),
    ("quantity 0", "post", "/orders", _lines(1, quantity=0), {}),
    ("quantity 100", "post", "/orders", _lines(1, quantity=100), {}),
    ("quantity 101", "post", "/orders", _lines(1, quantity=101), {}),
    ("customer id max", "post", "/orders", {**ORDER, "customer_id": MAX_ID}, {}),
    ("customer id beyond max", "post", "/orders", {**ORDER, "customer_id": MAX_ID + 1}, {}),
    ("customer id 1", "post", "/orders", {**ORDER, "customer_id": 1}, {}),
    ("customer id 0", "post", "/orders", {**ORDER, "customer_id": 0}, {}),
    (
        "product id max",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": MAX_ID, "quantity": 1}]},
        {},
    ),
    (
        "product id 0",
        "post",
        "/orders",
        {"customer_id": 1, "lines": [{"product_id": 0, "quantity": 1}]},
        {},
    ),
    ("key of 200", "post", "/orders", ORDER, {"Idempotency-Key": "k" * 200}),
    ("key of 201", "post", "/orders", ORDER, {"Idempotency-Key": "k" * 201}),
    ("price 1", "post", "/products/1/price", {"new_price_cents": 1, "reason": "r"}, {}),
    ("price 0", "post", "/products/1/price", {"new_price_cents": 0, "reason": "r"}, {}),
    ("price max", "post", "/products/1/price", {"new_price_cents": 100_000_000, "reason": "r"}, {}),
    (
        "price beyond max",
        "post",
        "/products/1/price",
        {"new_price_cents": 100_000_001, "reason": "r"},
        {},
    ),
    ("reason of 200", "post", "/products/1/price", {"new_price_cents": 5, "reason": "r" * 200}, {}),
    ("reason of 201", "post", "/products/1/price", {"new_price_cents": 5, "reason": "r" * 201}, {}),
    ("restock 1", "post", "/products/1/restock", {"quantity": 1}, {}),
    ("restock 0", "post", "/products/1/restock", {"quantity": 0}, {}),
    ("restock max", "post", "/products/1/restock", {"quantity": 1_000_000}, {}),
    ("restock beyond max", "post", "/products/1/restock", {"quantity": 1_000_001}, {}),
    ("restock product max", "post", f"/products/{MAX_ID}/restock", {"quantity": 1}, {}),
    ("restock product beyond max", "post", f"/products/{MAX_ID + 1}/restock", {"quantity": 1}, {}),
    ("ship order max", "post", f"/orders/{MAX_ID}/ship", None, {}),
    ("ship order beyond max", "post", f"/orders/{MAX_ID + 1}/ship", None, {}),
    ("cancel order 1", "post", "/orders/1/cancel", None, {}),
    ("cancel order 0", "post", "/orders/0/cancel", None, {}),
    ("discontinue product 1", "post", "/products/1/discontinue", None, {}),
    ("discontinue product 0", "post", "/products/0/discontinue", None, {}),
    ("customer orders of 1", "get", "/customers/1/orders", None, {}),
    ("customer orders of 0", "get", "/customers/0/orders", None, {}),
    ("orders limit 100", "get", "/customers/1/orders?limit=100", None, {}),
    ("orders limit 101", "get", "/customers/1/orders?limit=101", None, {}),
    ("top limit 1", "get", f"/dashboard/top-products?{WINDOW}&limit=1", None, {}),
    ("top limit 0", "get", f"/dashboard/top-products?{WINDOW}&limit=0", None, {}),
    ("search limit 100", "get", "/products/search?limit=100", None, {}),
    ("search limit 101", "get", "/products/search?limit=101", None, {}),
    ("search price 0", "get", "/products/search?min_price_cents=0", None, {}),
    ("search price -1", "get", "/products/search?min_price_cents=-1", None, {}),
    ("search price max", "get", f"/products/search?max_price_cents={10**12}", None, {}),
    ("search price beyond max", "get", f"/products/search?max_price_cents={10**12 + 1}", None, {}),
    ("search text of 100", "get", f"/products/search?text={'m' * 100}", None, {}),
    ("search text of 101", "get", f"/products/search?text={'m' * 101}", None, {}),
    ("search category of 1", "get", "/products/search?category=k", None, {}),
    ("search empty category", "get", "/products/search?category=", None, {}),
]


def test_a_request_at_each_bound_is_accepted_and_beyond_it_gets_422_with_a_reason(api):
    for i in range(0, len(AT_AND_BEYOND), 2):
        for (what, method, path, body, headers), beyond in zip(
            AT_AND_BEYOND[i : i + 2], (False, True), strict=True
        ):
            kwargs = {"headers": headers, **({"json": body} if body is not None else {})}
            response = getattr(api, method)(path, **kwargs)
            assert response.status_code < 500, (what, response.text)
            if beyond:
                assert response.status_code == 422, (what, response.text)
                assert response.json()["error"] == "invalid_input" and response.json()["reason"]
            else:  # validation lets it through (404/409 are the database's answer)
                assert response.status_code != 422, (what, response.text)
