-- One symbol's short volume ratio by day with its 20-day rolling ratio (parameter $symbol; CNMS preferred, else the facility files summed).
SELECT
    d."date",
    d.short_volume,
    d.total_volume,
    d.short_volume / NULLIF(d.total_volume, 0) AS short_ratio,
    SUM(d.short_volume) OVER w / NULLIF(SUM(d.total_volume) OVER w, 0) AS short_ratio_20d
FROM short_volume_daily AS d
WHERE d.symbol = $symbol
WINDOW w AS (ORDER BY d."date" ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
ORDER BY d."date"
