-- DIX-style dark index per day over the symbols in $symbols (comma-separated; '' = all): sum(short volume x price) / sum(total volume x price), price = the day's VWAP in trades.
WITH daily_short AS (
    SELECT d."date", d.symbol, d.short_volume, d.total_volume
    FROM short_volume_daily AS d
    WHERE $symbols = '' OR array_has(string_to_array($symbols, ','), d.symbol)
),
prices AS (
    SELECT
        CAST(date_trunc('day', t."timestamp" AT TIME ZONE 'America/New_York') AS DATE) AS "date",
        t.symbol,
        SUM(t.trade_value) / SUM(t.quantity) AS vwap
    FROM trades AS t
    GROUP BY 1, t.symbol
)
SELECT
    d."date",
    SUM(d.short_volume * p.vwap) / NULLIF(SUM(d.total_volume * p.vwap), 0) AS dix,
    SUM(d.short_volume) / NULLIF(SUM(d.total_volume), 0) AS share_weighted_ratio,
    SUM(d.total_volume * p.vwap) AS dollar_volume,
    COUNT(p.vwap) AS symbols_priced,
    COUNT(*) AS symbols
FROM daily_short AS d
LEFT JOIN prices AS p ON p."date" = d."date" AND p.symbol = d.symbol
GROUP BY d."date"
ORDER BY d."date"
