-- Trade windows: value, volume, VWAP, price range, block prints and spoof flags per (window_start, symbol, venue).
-- darkpool fills in {{slide}} (the hop, an interval), {{size}} (the window length, a duration),
-- {{hops}} and {{lag}}: for hopping windows `CROSS JOIN (VALUES (0), (slide), ...) AS h (lag)` and
-- `h.lag` (a trade lands in every window that holds it); for tumbling windows, the default (5
-- minutes), no join and a zero lag. Blocks: >= 10,000 shares or >= $200,000 notional.
-- latitude/longitude: the venue's location (MAX, in case messages carried differing coordinates).
WITH assigned AS (
    SELECT
        t.*,
        arrow_cast(date_bin({{slide}}, t."timestamp"), 'Timestamp(Microsecond, Some("UTC"))') - {{lag}} AS window_start
    FROM trades AS t
    {{hops}}
)
SELECT
    window_start,
    window_start + {{size}} AS window_end,
    symbol,
    venue,
    MAX(venue_kind) AS venue_kind,
    SUM(trade_value) AS total_trade_value,
    SUM(quantity) AS total_quantity,
    COUNT(*) AS num_trades,
    AVG(price) AS avg_price,
    SUM(trade_value) / SUM(quantity) AS vwap,
    MIN(price) AS min_price,
    MAX(price) AS max_price,
    SUM(CASE WHEN quantity >= 10000 OR trade_value >= 200000 THEN 1 ELSE 0 END) AS block_trades,
    SUM(CASE WHEN quantity >= 10000 OR trade_value >= 200000 THEN trade_value ELSE 0 END) AS block_value,
    SUM(CASE WHEN side = 'BUY' THEN quantity ELSE 0 END) AS buy_quantity,
    SUM(CASE WHEN side = 'SELL' THEN quantity ELSE 0 END) AS sell_quantity,
    SUM(CASE WHEN is_spoof THEN 1 ELSE 0 END) AS spoof_trades,
    MAX(latitude) AS latitude,
    MAX(longitude) AS longitude
FROM assigned
WHERE "timestamp" < window_start + {{size}}
GROUP BY window_start, symbol, venue
ORDER BY window_start, symbol, venue
