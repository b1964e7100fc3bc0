#!/bin/sh
# Runs once, when the postgres container initialises its data folder: a
# read-only role for Grafana's ticket panels.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE riskwatch_reader LOGIN PASSWORD '${RISKWATCH_READER_PASSWORD}';
GRANT CONNECT ON DATABASE ${POSTGRES_DB} TO riskwatch_reader;
GRANT USAGE ON SCHEMA public TO riskwatch_reader;
-- the workers create the ticket tables later; whatever they create is readable
ALTER DEFAULT PRIVILEGES FOR ROLE ${POSTGRES_USER} IN SCHEMA public GRANT SELECT ON TABLES TO riskwatch_reader;
SQL
