-- 0001: instruments and the candle tables the pipeline writes (one table per interval).
CREATE TABLE IF NOT EXISTS instruments (
    exchange        text        NOT NULL,
    token           bigint      NOT NULL,
    symbol          text        NOT NULL,
    name            text,
    instrument_type text,
    expiry          text,
    payload         bytea       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, token)
);
CREATE INDEX IF NOT EXISTS instruments_symbol_lower_idx ON instruments (lower(symbol));

CREATE TABLE IF NOT EXISTS candles_1m (
    exchange   text             NOT NULL,
    token      bigint           NOT NULL,
    interval   text             NOT NULL,
    start      bigint           NOT NULL,  -- bucket start, epoch ns UTC
    symbol     text             NOT NULL,
    open       double precision NOT NULL,
    high       double precision NOT NULL,
    low        double precision NOT NULL,
    close      double precision NOT NULL,
    volume     bigint           NOT NULL,
    oi         bigint,
    ticks      bigint           NOT NULL,
    partial    boolean          NOT NULL,
    incomplete boolean          NOT NULL,
    revision   bigint           NOT NULL,
    indicators text,                       -- Indicators as JSON
    PRIMARY KEY (exchange, token, start)
);
CREATE TABLE IF NOT EXISTS candles_1s  (LIKE candles_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS candles_5m  (LIKE candles_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS candles_15m (LIKE candles_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS candles_1h  (LIKE candles_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS candles_1d  (LIKE candles_1m INCLUDING ALL);
