-- crud-matview: crud's indexes (order summaries, customer orders and search stay on the live
-- tables), and per-minute materialized views for the dashboards, each with the unique index that
-- REFRESH MATERIALIZED VIEW CONCURRENTLY needs. Dashboard windows are whole minutes, so sums over
-- per-minute rows answer exactly what the live tables answer (an order lies in one minute, so
-- per-minute distinct order counts add up).
CREATE INDEX IF NOT EXISTS orders_customer_recent ON orders (customer_id, placed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_placed_at ON orders (placed_at) INCLUDE (status, total_cents);
CREATE INDEX IF NOT EXISTS order_lines_product ON order_lines (product_id) INCLUDE (quantity);
CREATE INDEX IF NOT EXISTS products_category ON products (category) WHERE status = 'active';

SET TimeZone = 'UTC';

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_category_sales_minute AS
    SELECT date_trunc('minute', o.placed_at) AS minute, p.category,
           count(DISTINCT o.id) AS orders, sum(l.quantity) AS units,
           sum(l.quantity * l.unit_price_cents) AS revenue_cents
    FROM orders o
    JOIN order_lines l ON l.order_id = o.id
    JOIN products p ON p.id = l.product_id
    WHERE o.status <> 'cancelled'
    GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS mv_category_sales_minute_key
    ON mv_category_sales_minute (minute, category);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_product_sales_minute AS
    SELECT date_trunc('minute', o.placed_at) AS minute, l.product_id,
           sum(l.quantity) AS units, sum(l.quantity * l.unit_price_cents) AS revenue_cents
    FROM orders o
    JOIN order_lines l ON l.order_id = o.id
    WHERE o.status <> 'cancelled'
    GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS mv_product_sales_minute_key
    ON mv_product_sales_minute (minute, product_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_revenue_minute AS
    SELECT date_trunc('minute', o.placed_at) AS minute, count(*) AS orders,
           sum(o.total_cents) AS revenue_cents
    FROM orders o
    WHERE o.status <> 'cancelled'
    GROUP BY 1;
CREATE UNIQUE INDEX IF NOT EXISTS mv_revenue_minute_key ON mv_revenue_minute (minute);

-- When each view's data was current: the start of the transaction that last refreshed it.
CREATE TABLE IF NOT EXISTS matview_refreshes (
    view text PRIMARY KEY,
    as_of timestamptz NOT NULL,
    refreshed_at timestamptz NOT NULL
);
INSERT INTO matview_refreshes
    SELECT v, now(), now()
    FROM unnest(ARRAY['mv_category_sales_minute', 'mv_product_sales_minute', 'mv_revenue_minute']) v
ON CONFLICT (view) DO NOTHING;
ANALYZE;
