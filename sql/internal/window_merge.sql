-- Merge window rows of the same key into one: partial aggregates of a stream, or a final window and its late trades.
-- The merge is associative, so merge(merge(a, b), c) = merge(a, b, c) = the aggregate over all trades.
SELECT
    window_start,
    window_end,
    symbol,
    venue,
    MAX(venue_kind) AS venue_kind,
    SUM(total_trade_value) AS total_trade_value,
    SUM(total_quantity) AS total_quantity,
    SUM(num_trades) AS num_trades,
    SUM(avg_price * num_trades) / SUM(num_trades) AS avg_price,
    SUM(total_trade_value) / SUM(total_quantity) AS vwap,
    MIN(min_price) AS min_price,
    MAX(max_price) AS max_price,
    SUM(block_trades) AS block_trades,
    SUM(block_value) AS block_value,
    SUM(buy_quantity) AS buy_quantity,
    SUM(sell_quantity) AS sell_quantity,
    SUM(spoof_trades) AS spoof_trades,
    MAX(latitude) AS latitude,
    MAX(longitude) AS longitude
FROM window_rows
GROUP BY window_start, window_end, symbol, venue
ORDER BY window_start, symbol, venue
