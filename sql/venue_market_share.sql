-- Venue market share per symbol: each venue's share of the symbol's traded value, volume and trade count.
WITH per_venue AS (
    SELECT
        symbol,
        venue,
        SUM(total_trade_value) AS total_value,
        SUM(total_quantity) AS total_quantity,
        SUM(num_trades) AS num_trades
    FROM windows
    GROUP BY symbol, venue
)
SELECT
    p.symbol,
    p.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    p.total_value,
    p.total_quantity,
    p.num_trades,
    p.total_value / SUM(p.total_value) OVER (PARTITION BY p.symbol) AS value_share,
    CAST(p.total_quantity AS DOUBLE) / SUM(p.total_quantity) OVER (PARTITION BY p.symbol) AS quantity_share,
    CAST(p.num_trades AS DOUBLE) / SUM(p.num_trades) OVER (PARTITION BY p.symbol) AS trade_share
FROM per_venue AS p
LEFT JOIN venues AS v ON v.code = p.venue
ORDER BY p.symbol, p.total_value DESC, p.venue
