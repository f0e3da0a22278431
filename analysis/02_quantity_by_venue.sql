-- Overall quantity by venue: total shares traded per venue, with the venue's kind from the registry.
SELECT
    w.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    SUM(w.total_quantity) AS total_quantity,
    SUM(w.num_trades) AS num_trades
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.venue, v.kind
ORDER BY total_quantity DESC, w.venue
