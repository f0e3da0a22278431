-- Trade value over time by venue and symbol: value (USD) per window for the six venues with the most value overall; the others are summed as OTHER.
WITH ranked AS (
    SELECT
        venue,
        ROW_NUMBER() OVER (ORDER BY SUM(total_trade_value) DESC, venue) AS venue_rank
    FROM windows
    GROUP BY venue
)
SELECT
    w.window_start,
    w.symbol,
    CASE WHEN r.venue_rank <= 6 THEN w.venue ELSE 'OTHER' END AS venue,
    CASE WHEN r.venue_rank <= 6 THEN COALESCE(v.kind, 'unknown') ELSE 'mixed' END AS venue_kind,
    MIN(r.venue_rank) AS venue_rank,
    SUM(w.total_trade_value) AS total_value
FROM windows AS w
JOIN ranked AS r ON r.venue = w.venue
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY
    w.window_start,
    w.symbol,
    CASE WHEN r.venue_rank <= 6 THEN w.venue ELSE 'OTHER' END,
    CASE WHEN r.venue_rank <= 6 THEN COALESCE(v.kind, 'unknown') ELSE 'mixed' END
ORDER BY w.window_start, w.symbol, venue_rank, venue
