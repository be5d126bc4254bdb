-- 0002 (plain PostgreSQL): ticks, range-partitioned by exchange time into IST days.
-- Partitions ticks_pYYYYMMDD are created on demand by the store before a batch for a new day.
-- The key keeps two ticks of one second apart: tick_id hashes the whole tick (see storage/base.py).
CREATE TABLE IF NOT EXISTS ticks (
    exchange    text             NOT NULL,
    token       bigint           NOT NULL,
    ts_exchange bigint           NOT NULL,  -- epoch ns UTC
    ts_recv     bigint           NOT NULL,
    tick_id     bigint           NOT NULL,
    source      text             NOT NULL,
    seq         bigint,
    ltp         double precision,
    volume      bigint,
    payload     bytea            NOT NULL,  -- the canonical Tick as msgpack
    PRIMARY KEY (exchange, token, ts_exchange, ts_recv, tick_id)
) PARTITION BY RANGE (ts_exchange);
