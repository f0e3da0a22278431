-- Venue totals: traded value, volume, trades and average trade size (total shares / trades, not a mean of window averages).
SELECT
    w.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    SUM(w.total_trade_value) AS total_value,
    SUM(w.total_quantity) AS total_quantity,
    SUM(w.num_trades) AS num_trades,
    CAST(SUM(w.total_quantity) AS DOUBLE) / SUM(w.num_trades) AS avg_trade_size,
    SUM(w.block_trades) AS block_trades
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.venue, v.kind
ORDER BY total_value DESC, w.venue
