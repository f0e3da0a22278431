-- One symbol's short volume ratio by day with its 20-day rolling ratio (parameter $symbol; CNMS preferred, else the facility files summed).
WITH daily AS (
    SELECT
        s."date",
        COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.short_volume END),
                 SUM(CASE WHEN s.facility <> 'CNMS' THEN s.short_volume END)) AS short_volume,
        COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.total_volume END),
                 SUM(CASE WHEN s.facility <> 'CNMS' THEN s.total_volume END)) AS total_volume
    FROM short_volume AS s
    WHERE s.symbol = $symbol
    GROUP BY s."date"
)
SELECT
    d."date",
    d.short_volume,
    d.total_volume,
    d.short_volume / NULLIF(d.total_volume, 0) AS short_ratio,
    SUM(d.short_volume) OVER w / NULLIF(SUM(d.total_volume) OVER w, 0) AS short_ratio_20d
FROM daily AS d
WINDOW w AS (ORDER BY d."date" ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
ORDER BY d."date"
