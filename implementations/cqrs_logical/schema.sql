-- cqrs-logical adds nothing to the write model beyond the outbox wake-up trigger and puts the read
-- models (implementations/read_model/schema.sql) in the same database; the projector installs
-- both (implementations.projector.engine.install). No query indexes on the write tables: no query
-- reads them.
SELECT 1;
