-- The write model's tables as the event store holds them, for the checks against the write model
-- (implementations.write_model.TRUTH_SEARCH_PATH reads schema write_model first): customers,
-- products, orders, order_lines and price_history as views of the streams' folds, with the
-- names and columns of the normalized tables cqrs-es does not write. The history's times are
-- moved by the clone's shift, as the projection moves them. Topics are filled in by install(),
-- which runs this before it converts the history (that uses es_stream).
CREATE SCHEMA IF NOT EXISTS write_model;

-- The stream of customer (1), product (2) or order (3) `number`, as aggregates.stream_id makes
-- it, and back: the number in its last 16 hex digits.
CREATE OR REPLACE FUNCTION public.es_stream(kind int, number bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (lpad(to_hex(kind), 8, '0') || '-0000-0000-' || left(lpad(to_hex(number), 16, '0'), 4)
        || '-' || right(lpad(to_hex(number), 16, '0'), 12))::uuid;
CREATE OR REPLACE FUNCTION public.es_number(stream uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('x' || right(replace(stream::text, '-', ''), 16))::bit(64)::bigint;

-- The history (notification ids up to es_history_head, history.HISTORY_HEAD) and the minutes
-- its times are behind the clone's: what the clone was moved by (shift_minutes; none in a
-- template) less what it had been moved by when the history was converted (es_history_shift,
-- history.HISTORY_SHIFT: the outbox's times it copied were moved already). One row, read once
-- per query.
CREATE OR REPLACE FUNCTION public.es_history(OUT head bigint, OUT shift int)
LANGUAGE sql STABLE AS $$
SELECT coalesce((SELECT value::bigint FROM public.dataset_info WHERE key = {history_head}), 0),
       coalesce((SELECT value::int FROM public.dataset_info WHERE key = 'shift_minutes'), 0)
       - coalesce((SELECT value::int FROM public.dataset_info WHERE key = {history_shift}), 0)
$$;

-- When an event was recorded, in the clone's time: its state's timestamp, moved by the shift
-- when it is one of the history's.
CREATE OR REPLACE FUNCTION public.es_recorded_at(
    state jsonb, notification_id bigint, head bigint, shift int
) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (state->'timestamp'->>'_data_')::timestamptz
       + CASE WHEN notification_id <= head THEN shift ELSE 0 END * interval '1 minute';

CREATE OR REPLACE VIEW write_model.es_states AS
SELECT e.originator_id AS stream, e.originator_version AS version, e.topic, e.notification_id,
       convert_from(e.state, 'UTF8')::jsonb AS s, public.es_number(e.originator_id) AS number
FROM public.es_events e;

CREATE OR REPLACE VIEW write_model.customers AS
SELECT number AS id, s->>'name' AS name FROM write_model.es_states WHERE topic = {registered};

CREATE OR REPLACE VIEW write_model.products AS
WITH latest AS (
    SELECT DISTINCT ON (stream) stream, topic, s FROM write_model.es_states
    WHERE topic IN ({added}, {price_changed}, {discontinued})
    ORDER BY stream, version DESC
), counted AS (  -- the last event that sets the stock, then what was taken and given back
    SELECT DISTINCT ON (stream) stream, version, (s->>'stock')::bigint AS stock
    FROM write_model.es_states WHERE topic IN ({added}, {restocked})
    ORDER BY stream, version DESC
)
SELECT a.number AS id, a.s->>'sku' AS sku, a.s->>'name' AS name, a.s->>'category' AS category,
       CASE l.topic WHEN {price_changed} THEN (l.s->>'new_price_cents')::bigint
                    ELSE (l.s->>'price_cents')::bigint END AS price_cents,
       c.stock + coalesce((
           SELECT sum(CASE WHEN d.topic = {taken} THEN -1 ELSE 1 END * (d.s->>'quantity')::bigint)
           FROM write_model.es_states d
           WHERE d.stream = a.stream AND d.version > c.version
             AND d.topic IN ({taken}, {returned})), 0) AS stock,
       CASE l.topic WHEN {discontinued} THEN 'discontinued' ELSE 'active' END AS status
FROM write_model.es_states a JOIN latest l ON l.stream = a.stream
     JOIN counted c ON c.stream = a.stream
WHERE a.topic = {added};

CREATE OR REPLACE VIEW write_model.orders AS
WITH latest AS (
    SELECT DISTINCT ON (stream) stream, topic FROM write_model.es_states
    WHERE topic IN ({placed}, {shipped}, {cancelled})
    ORDER BY stream, version DESC
)
SELECT p.number AS id, (p.s->>'customer_id')::bigint AS customer_id,
       CASE l.topic WHEN {shipped} THEN 'shipped' WHEN {cancelled} THEN 'cancelled'
                    ELSE 'placed' END AS status,
       (p.s->>'total_cents')::bigint AS total_cents, p.s->>'idempotency_key' AS idempotency_key,
       public.es_recorded_at(p.s, p.notification_id, h.head, h.shift) AS placed_at
FROM write_model.es_states p JOIN latest l ON l.stream = p.stream CROSS JOIN public.es_history() h
WHERE p.topic = {placed};

CREATE OR REPLACE VIEW write_model.order_lines AS
SELECT p.number AS order_id, (l->>'line_no')::int AS line_no,
       (l->>'product_id')::bigint AS product_id, (l->>'quantity')::int AS quantity,
       (l->>'unit_price_cents')::bigint AS unit_price_cents
FROM write_model.es_states p CROSS JOIN LATERAL jsonb_array_elements(p.s->'lines') l
WHERE p.topic = {placed};

CREATE OR REPLACE VIEW write_model.price_history AS
SELECT notification_id AS id, number AS product_id,
       (s->>'old_price_cents')::bigint AS old_price_cents,
       (s->>'new_price_cents')::bigint AS new_price_cents, s->>'reason' AS reason,
       public.es_recorded_at(s, notification_id, h.head, h.shift) AS changed_at
FROM write_model.es_states CROSS JOIN public.es_history() h WHERE topic = {price_changed};

-- The runner raises every product's stock before a load (deploy.provision.ready_for_load: an
-- UPDATE of products.stock, so that no checkout is refused for stock). cqrs-es's stock is its
-- product streams', so such an update is recorded there as each product's Restocked event (the
-- stock it sets), after the table lock the library takes, so the log stays in commit order.
CREATE OR REPLACE FUNCTION write_model.es_record_stock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE public.es_events IN EXCLUSIVE MODE;
    INSERT INTO public.es_events (originator_id, originator_version, topic, state)
    SELECT es_stream(2, n.id),
           (SELECT max(e.originator_version) + 1 FROM public.es_events e
            WHERE e.originator_id = es_stream(2, n.id)),
           {restocked},
           convert_to(jsonb_build_object(
               'timestamp', jsonb_build_object('_type_', 'datetime_iso', '_data_',
                   to_char(clock_timestamp() AT TIME ZONE 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
               'quantity', n.stock - o.stock, 'stock', n.stock)::text, 'UTF8')
    FROM new_products n JOIN old_products o ON o.id = n.id
    WHERE n.stock <> o.stock;
    NOTIFY es_events;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS es_record_stock ON public.products;
CREATE TRIGGER es_record_stock AFTER UPDATE ON public.products
    REFERENCING OLD TABLE AS old_products NEW TABLE AS new_products
    FOR EACH STATEMENT EXECUTE FUNCTION write_model.es_record_stock();
