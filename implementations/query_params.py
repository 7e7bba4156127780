"""Bind parameters of the query types, named the same in every implementation's SQL."""

from __future__ import annotations

from implementations.domain import queries as q


def window(w: q.TimeWindow) -> dict:
    return {"since": w.since, "until": w.until}


def top_products(query: q.TopProductsQuery) -> dict:
    return {**window(query.window), "limit": query.limit}


def revenue(query: q.RevenueQuery) -> dict:
    return {**window(query.window), "bucket": query.bucket}


def search(query: q.ProductSearch) -> dict:
    return {
        "category": query.category,
        "min_price": query.min_price_cents,
        "max_price": query.max_price_cents,
        "pattern": query.like_pattern,
        "limit": query.limit,
    }
