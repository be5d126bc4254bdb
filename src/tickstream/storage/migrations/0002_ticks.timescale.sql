-- 0002 (TimescaleDB, applied only when pg_available_extensions lists timescaledb).
-- UNTESTED in this repository's CI: the local PostgreSQL has no timescaledb extension.
-- A hypertable on integer nanoseconds (1-day chunks) and 1m/5m continuous aggregates over the
-- raw ticks with real-time aggregation on (materialized_only = false) and refresh policies.
-- The pipeline's own candles stay in candles_1m/candles_5m; the aggregates are ticks_ohlc_*.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS ticks (
    exchange    text             NOT NULL,
    token       bigint           NOT NULL,
    ts_exchange bigint           NOT NULL,
    ts_recv     bigint           NOT NULL,
    tick_id     bigint           NOT NULL,
    source      text             NOT NULL,
    seq         bigint,
    ltp         double precision,
    volume      bigint,
    payload     bytea            NOT NULL,
    PRIMARY KEY (exchange, token, ts_exchange, ts_recv, tick_id)
);
SELECT create_hypertable('ticks', 'ts_exchange', chunk_time_interval => 86400000000000,
                         if_not_exists => TRUE);

CREATE OR REPLACE FUNCTION tickstream_now_ns() RETURNS bigint
    LANGUAGE sql STABLE AS $$ SELECT (extract(epoch FROM now()) * 1e9)::bigint $$;
SELECT set_integer_now_func('ticks', 'tickstream_now_ns', replace_if_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS ticks_ohlc_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT exchange, token, time_bucket(60000000000, ts_exchange) AS start,
       first(ltp, ts_exchange) AS open, max(ltp) AS high, min(ltp) AS low,
       last(ltp, ts_exchange) AS close, max(volume) - min(volume) AS volume, count(*) AS ticks
FROM ticks GROUP BY exchange, token, time_bucket(60000000000, ts_exchange)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS ticks_ohlc_5m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT exchange, token, time_bucket(300000000000, ts_exchange) AS start,
       first(ltp, ts_exchange) AS open, max(ltp) AS high, min(ltp) AS low,
       last(ltp, ts_exchange) AS close, max(volume) - min(volume) AS volume, count(*) AS ticks
FROM ticks GROUP BY exchange, token, time_bucket(300000000000, ts_exchange)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('ticks_ohlc_1m',
    start_offset => 259200000000000, end_offset => 60000000000,
    schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('ticks_ohlc_5m',
    start_offset => 259200000000000, end_offset => 300000000000,
    schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE);
