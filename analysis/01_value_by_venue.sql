-- Overall trade value by venue: total traded value (USD) per venue, with the venue's kind from the registry.
SELECT
    w.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    SUM(w.total_trade_value) AS total_value,
    SUM(w.num_trades) AS num_trades
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.venue, v.kind
ORDER BY total_value DESC, w.venue
