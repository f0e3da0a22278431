-- Block prints over time: trades of >= 10,000 shares or >= $200,000 per window, by venue kind, with their value.
SELECT
    w.window_start,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    SUM(w.block_trades) AS block_trades,
    SUM(w.block_value) AS block_value
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.window_start, COALESCE(v.kind, 'unknown')
ORDER BY w.window_start, venue_kind
