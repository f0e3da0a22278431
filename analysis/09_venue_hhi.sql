-- Venue concentration per symbol: Herfindahl-Hirschman index of traded value across venues (10,000 = everything on one venue).
WITH per_venue AS (
    SELECT symbol, venue, SUM(total_trade_value) AS total_value
    FROM windows
    GROUP BY symbol, venue
),
shares AS (
    SELECT
        symbol,
        venue,
        total_value,
        total_value / SUM(total_value) OVER (PARTITION BY symbol) AS share,
        ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY total_value DESC, venue) AS venue_rank
    FROM per_venue
)
SELECT
    symbol,
    COUNT(*) AS venues,
    SUM(total_value) AS total_value,
    SUM(share * share) * 10000 AS hhi,
    MAX(CASE WHEN venue_rank = 1 THEN venue END) AS top_venue,
    MAX(share) AS top_venue_share
FROM shares
GROUP BY symbol
ORDER BY hhi DESC, symbol
