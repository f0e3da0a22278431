-- 20-day rolling short volume ratio per symbol: short volume over total volume summed across the symbol's last 20 loaded trading days (volume-weighted, CNMS preferred).
WITH daily AS (
    SELECT
        s."date",
        s.symbol,
        COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.short_volume END),
                 SUM(CASE WHEN s.facility <> 'CNMS' THEN s.short_volume END)) AS short_volume,
        COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.total_volume END),
                 SUM(CASE WHEN s.facility <> 'CNMS' THEN s.total_volume END)) AS total_volume
    FROM short_volume AS s
    GROUP BY s."date", s.symbol
)
SELECT
    d."date",
    d.symbol,
    d.short_volume / NULLIF(d.total_volume, 0) AS short_ratio,
    SUM(d.short_volume) OVER w / NULLIF(SUM(d.total_volume) OVER w, 0) AS short_ratio_20d,
    COUNT(*) OVER w AS days_in_window
FROM daily AS d
WINDOW w AS (PARTITION BY d.symbol ORDER BY d."date" ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
ORDER BY d.symbol, d."date"
