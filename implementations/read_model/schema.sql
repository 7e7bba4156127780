-- The denormalized read models both CQRS variants query, and the projector's checkpoint.
-- They live in the read database: the write database itself (cqrs-logical) or the read server.
-- Aggregates are kept per minute, so any whole-minute window is answered exactly.

CREATE TABLE IF NOT EXISTS rm_customers (
    customer_id        bigint PRIMARY KEY,
    name               text NOT NULL,
    order_count        bigint NOT NULL DEFAULT 0,      -- non-cancelled orders
    total_spent_cents  bigint NOT NULL DEFAULT 0,
    last_order_at      timestamptz
);

CREATE TABLE IF NOT EXISTS rm_products (
    product_id   bigint PRIMARY KEY,
    sku          text NOT NULL,
    name         text NOT NULL,
    category     text NOT NULL,
    price_cents  bigint NOT NULL,
    active       boolean NOT NULL,
    units_sold   bigint NOT NULL DEFAULT 0,            -- in non-cancelled orders
    version      bigint NOT NULL DEFAULT 1             -- the write model's, last applied
);
CREATE INDEX IF NOT EXISTS rm_products_search ON rm_products (units_sold DESC, product_id) WHERE active;

CREATE TABLE IF NOT EXISTS rm_orders (
    order_id       bigint PRIMARY KEY,
    customer_id    bigint NOT NULL,
    customer_name  text NOT NULL,
    status         text NOT NULL,
    total_cents    bigint NOT NULL,
    item_count     integer NOT NULL,
    placed_at      timestamptz NOT NULL,
    version        bigint NOT NULL DEFAULT 1           -- the write model's, last applied
);
CREATE INDEX IF NOT EXISTS rm_orders_customer_recent ON rm_orders (customer_id, placed_at DESC, order_id DESC);

CREATE TABLE IF NOT EXISTS rm_order_lines (
    order_id          bigint NOT NULL,
    line_no           smallint NOT NULL,
    product_id        bigint NOT NULL,
    sku               text NOT NULL,
    product_name      text NOT NULL,
    category          text NOT NULL,
    quantity          integer NOT NULL,
    unit_price_cents  bigint NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE IF NOT EXISTS rm_category_sales_minute (
    category       text NOT NULL,
    minute         timestamptz NOT NULL,
    orders         bigint NOT NULL,
    units          bigint NOT NULL,
    revenue_cents  bigint NOT NULL,
    PRIMARY KEY (minute, category)
);

CREATE TABLE IF NOT EXISTS rm_product_sales_minute (
    product_id     bigint NOT NULL,
    minute         timestamptz NOT NULL,
    units          bigint NOT NULL,
    revenue_cents  bigint NOT NULL,
    PRIMARY KEY (minute, product_id)
);

CREATE TABLE IF NOT EXISTS rm_revenue_minute (
    minute         timestamptz PRIMARY KEY,
    orders         bigint NOT NULL,
    revenue_cents  bigint NOT NULL
);

-- Where each projection stands: the last applied (tx_id, position), advanced by compare-and-set
-- in the same transaction as the read-model updates. `horizon`: every event of a transaction with
-- tx_id below it has been applied (set after a read that was not cut short by the batch size).
CREATE TABLE IF NOT EXISTS projection_checkpoint (
    projection         text PRIMARY KEY,
    tx_id              xid8 NOT NULL DEFAULT '0',
    position           bigint NOT NULL DEFAULT 0,
    horizon            xid8 NOT NULL DEFAULT '0',
    events_applied     bigint NOT NULL DEFAULT 0,
    last_source_commit timestamptz,
    last_lag_ms        double precision,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
