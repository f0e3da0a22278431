-- Trade windows: value, volume, VWAP, price range, block prints and spoof flags per (window_start, symbol, venue).
-- darkpool fills in {{slide}} (the hop, an interval), {{size}} (the window length, a duration),
-- {{hops}}, {{lag}} and {{in_window}}: for hopping windows `CROSS JOIN (VALUES (0), (slide), ...)
-- AS h (lag)`, `h.lag` and `"timestamp" < window_start + {{size}}` (a trade lands in every window
-- that holds it); for tumbling windows, the default (5 minutes), no join, a zero lag and `TRUE`
-- (every trade is in the one window it is binned to; DataFusion drops the filter).
-- Blocks: >= 10,000 shares or >= $200,000 notional. The conditional sums are aggregate FILTERs
-- rather than SUM(CASE ...): DataFusion evaluates a CASE with a column branch by copying the
-- batch's rows for each branch (the same windows, a tenth less windowing time).
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
    COUNT(*) FILTER (WHERE quantity >= 10000 OR trade_value >= 200000) AS block_trades,
    COALESCE(SUM(trade_value) FILTER (WHERE quantity >= 10000 OR trade_value >= 200000), 0) AS block_value,
    COALESCE(SUM(quantity) FILTER (WHERE side = 'BUY'), 0) AS buy_quantity,
    COALESCE(SUM(quantity) FILTER (WHERE side = 'SELL'), 0) AS sell_quantity,
    COUNT(*) FILTER (WHERE is_spoof) AS spoof_trades,
    MAX(latitude) AS latitude,
    MAX(longitude) AS longitude
FROM assigned
WHERE {{in_window}}
GROUP BY window_start, symbol, venue
ORDER BY window_start, symbol, venue
