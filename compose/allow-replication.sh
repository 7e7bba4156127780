#!/bin/sh
# Run once by the postgres image when write-db's volume is new (docker-entrypoint-initdb.d):
# lets standby-db stream from it (pg_basebackup, then physical replication; crud-replica).
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
