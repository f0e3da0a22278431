-- Trade-size percentiles by venue kind: p50, p90 and p99 of shares per trade over individual trades, with the average (total shares / trades).
-- Exact percentiles with linear interpolation between trades (numpy's default). They are read off each kind's distribution of sizes
-- (trades counted per distinct size), so memory grows with the number of distinct sizes, not with the number of trades.
WITH per_venue AS (
    SELECT venue, quantity, COUNT(*) AS n
    FROM trades
    GROUP BY venue, quantity
),
sizes AS (
    SELECT
        COALESCE(v.kind, 'unknown') AS venue_kind,
        p.quantity,
        SUM(p.n) AS n
    FROM per_venue AS p
    LEFT JOIN venues AS v ON v.code = p.venue
    GROUP BY COALESCE(v.kind, 'unknown'), p.quantity
),
positions AS (
    -- Trades of this size occupy sorted positions [first_position, first_position + n), counting from 0.
    SELECT
        venue_kind,
        quantity,
        n,
        SUM(n) OVER (PARTITION BY venue_kind ORDER BY quantity ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - n AS first_position
    FROM sizes
),
kinds AS (
    SELECT
        venue_kind,
        SUM(n) AS num_trades,
        CAST(SUM(quantity * n) AS DOUBLE) / SUM(n) AS avg_size
    FROM sizes
    GROUP BY venue_kind
),
ranks AS (
    -- The percentile sits between sorted positions lower_position and upper_position.
    SELECT
        k.venue_kind,
        p.percentile,
        CAST(k.num_trades - 1 AS DOUBLE) * p.percentile AS rank,
        CAST(FLOOR(CAST(k.num_trades - 1 AS DOUBLE) * p.percentile) AS BIGINT) AS lower_position,
        LEAST(CAST(FLOOR(CAST(k.num_trades - 1 AS DOUBLE) * p.percentile) AS BIGINT) + 1, k.num_trades - 1) AS upper_position
    FROM kinds AS k
    CROSS JOIN (VALUES (0.5), (0.9), (0.99)) AS p(percentile)
),
interpolated AS (
    SELECT
        r.venue_kind,
        r.percentile,
        CAST(lo.quantity AS DOUBLE) + CAST(hi.quantity - lo.quantity AS DOUBLE) * (r.rank - CAST(r.lower_position AS DOUBLE)) AS size
    FROM ranks AS r
    JOIN positions AS lo
        ON lo.venue_kind = r.venue_kind
        AND r.lower_position >= lo.first_position
        AND r.lower_position < lo.first_position + lo.n
    JOIN positions AS hi
        ON hi.venue_kind = r.venue_kind
        AND r.upper_position >= hi.first_position
        AND r.upper_position < hi.first_position + hi.n
)
SELECT
    k.venue_kind,
    k.num_trades,
    k.avg_size,
    MAX(CASE WHEN i.percentile = 0.5 THEN i.size END) AS p50,
    MAX(CASE WHEN i.percentile = 0.9 THEN i.size END) AS p90,
    MAX(CASE WHEN i.percentile = 0.99 THEN i.size END) AS p99
FROM kinds AS k
JOIN interpolated AS i ON i.venue_kind = k.venue_kind
GROUP BY k.venue_kind, k.num_trades, k.avg_size
ORDER BY k.venue_kind
