-- Trade-size percentiles by venue kind: p50, p90 and p99 of shares per trade over individual trades, with the average (total shares / trades).
-- Percentiles interpolate linearly between trades (percentile_cont).
-- DataFusion 55 rounds the interpolation weight down to a multiple of 1e-6 (apache/datafusion#25266), so a value may differ from numpy in the sixth decimal.
SELECT
    COALESCE(v.kind, 'unknown') AS venue_kind,
    COUNT(*) AS num_trades,
    CAST(SUM(t.quantity) AS DOUBLE) / COUNT(*) AS avg_size,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(t.quantity AS DOUBLE)) AS p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY CAST(t.quantity AS DOUBLE)) AS p90,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY CAST(t.quantity AS DOUBLE)) AS p99
FROM trades AS t
LEFT JOIN venues AS v ON v.code = t.venue
GROUP BY COALESCE(v.kind, 'unknown')
ORDER BY venue_kind
