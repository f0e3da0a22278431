-- Short volume ratio per symbol and day (FINRA Reg SHO): the consolidated CNMS file when loaded, else the sum of the facility files.
WITH per_day AS (
    SELECT
        s."date",
        s.symbol,
        SUM(CASE WHEN s.facility = 'CNMS' THEN s.short_volume END) AS cnms_short,
        SUM(CASE WHEN s.facility = 'CNMS' THEN s.total_volume END) AS cnms_total,
        SUM(CASE WHEN s.facility = 'CNMS' THEN s.short_exempt_volume END) AS cnms_exempt,
        SUM(CASE WHEN s.facility <> 'CNMS' THEN s.short_volume END) AS facility_short,
        SUM(CASE WHEN s.facility <> 'CNMS' THEN s.total_volume END) AS facility_total,
        SUM(CASE WHEN s.facility <> 'CNMS' THEN s.short_exempt_volume END) AS facility_exempt
    FROM short_volume AS s
    GROUP BY s."date", s.symbol
)
SELECT
    d."date",
    d.symbol,
    COALESCE(d.cnms_short, d.facility_short) AS short_volume,
    COALESCE(d.cnms_exempt, d.facility_exempt) AS short_exempt_volume,
    COALESCE(d.cnms_total, d.facility_total) AS total_volume,
    COALESCE(d.cnms_short, d.facility_short) / NULLIF(COALESCE(d.cnms_total, d.facility_total), 0) AS short_ratio,
    CASE WHEN d.cnms_total IS NOT NULL THEN 'CNMS' ELSE 'facilities' END AS source
FROM per_day AS d
ORDER BY d."date", d.symbol
