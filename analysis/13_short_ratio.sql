-- Short volume ratio by day: FINRA Reg SHO short volume as a percent of total volume for the 8 symbols with the most volume (CNMS preferred, else the facility files summed).
WITH daily AS (
    SELECT v."date" AS day, v.symbol, v.short_volume, v.total_volume
    FROM short_volume_daily AS v
),
top_symbols AS (
    SELECT d.symbol
    FROM daily AS d
    GROUP BY d.symbol
    ORDER BY SUM(d.total_volume) DESC, d.symbol
    LIMIT 8
)
SELECT
    d.day,
    d.symbol AS series,
    100.0 * d.short_volume / NULLIF(d.total_volume, 0) AS share_pct
FROM daily AS d
JOIN top_symbols AS t ON t.symbol = d.symbol
ORDER BY d.day, series
