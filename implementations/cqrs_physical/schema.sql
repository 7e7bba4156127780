-- cqrs-physical: the write server gets only the outbox wake-up trigger; the read models
-- (implementations/read_model/schema.sql) and the projector's checkpoint live in a database of the
-- same name on the read server. The projector installs both (implementations.projector.engine).
SELECT 1;
