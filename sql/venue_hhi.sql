-- Venue concentration per symbol: Herfindahl-Hirschman index of traded value across venues (10,000 = all on one venue).
WITH per_venue AS (
    SELECT symbol, venue, SUM(total_trade_value) AS total_value
    FROM windows
    GROUP BY symbol, venue
),
shares AS (
    SELECT symbol, venue, total_value, total_value / SUM(total_value) OVER (PARTITION BY symbol) AS share
    FROM per_venue
)
SELECT
    symbol,
    COUNT(*) AS venues,
    SUM(total_value) AS total_value,
    SUM(share * share) * 10000 AS hhi,
    MAX(share) AS top_venue_share
FROM shares
GROUP BY symbol
ORDER BY hhi DESC, symbol
