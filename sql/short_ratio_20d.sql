-- 20-day rolling short volume ratio per symbol: short volume over total volume summed across the symbol's last 20 loaded trading days (volume-weighted, CNMS preferred).
SELECT
    d."date",
    d.symbol,
    d.short_volume / NULLIF(d.total_volume, 0) AS short_ratio,
    SUM(d.short_volume) OVER w / NULLIF(SUM(d.total_volume) OVER w, 0) AS short_ratio_20d,
    COUNT(*) OVER w AS days_in_window
FROM short_volume_daily AS d
WINDOW w AS (PARTITION BY d.symbol ORDER BY d."date" ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
ORDER BY d.symbol, d."date"
