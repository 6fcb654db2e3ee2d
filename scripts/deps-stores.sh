#!/usr/bin/env bash
# deps-stores.sh - install the Debian 12 packages the time-series stores need
# (postgresql:, influxdb:), only those missing. Called by the Makefile beside
# scripts/deps.sh.
#
#   postgresql        server binaries (/usr/lib/postgresql/15/bin): the
#                     integration tests start their own throw-away cluster
#   libpq-dev         libpq (src/store/postgres.c)
#   influxdb          influxd 1.6.7: the integration tests start their own
#   libcurl4-openssl-dev  HTTP client for the InfluxDB API (src/store/influxdb.c)
#   python3-psycopg   integration tests look into PostgreSQL directly
#   curl              bench/bench_pg.sh: direct line-protocol writes
#
# The Debian packages also register and start a system-wide cluster /
# influxd service (postgresql@15-main, influxdb). dronegate does not use them;
# they are left alone (stop them with systemctl if the ports 5432/8086 matter).
# TimescaleDB is not packaged in Debian 12: the hypertable code path of
# postgres.c is used only where the extension was installed by other means.
set -euo pipefail
exec "$(dirname "$0")/deps.sh" postgresql libpq-dev influxdb libcurl4-openssl-dev python3-psycopg curl
