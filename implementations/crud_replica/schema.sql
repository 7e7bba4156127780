-- crud: the indexes a competent team adds so dashboards and lookups can run on the live tables.
CREATE INDEX IF NOT EXISTS orders_customer_recent ON orders (customer_id, placed_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_placed_at ON orders (placed_at) INCLUDE (status, total_cents);
CREATE INDEX IF NOT EXISTS order_lines_product ON order_lines (product_id) INCLUDE (quantity);
CREATE INDEX IF NOT EXISTS products_category ON products (category) WHERE status = 'active';
ANALYZE;
