-- The view short_volume_daily: one row per date and symbol. The consolidated CNMS file when it is loaded, else the facility files (TRFs, ADF, ORF) summed, so loading both never counts a share twice.
SELECT
    s."date",
    s.symbol,
    COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.short_volume END),
             SUM(CASE WHEN s.facility <> 'CNMS' THEN s.short_volume END)) AS short_volume,
    COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.short_exempt_volume END),
             SUM(CASE WHEN s.facility <> 'CNMS' THEN s.short_exempt_volume END)) AS short_exempt_volume,
    COALESCE(SUM(CASE WHEN s.facility = 'CNMS' THEN s.total_volume END),
             SUM(CASE WHEN s.facility <> 'CNMS' THEN s.total_volume END)) AS total_volume,
    CASE WHEN SUM(CASE WHEN s.facility = 'CNMS' THEN 1 ELSE 0 END) > 0 THEN 'CNMS' ELSE 'facilities' END AS source
FROM short_volume AS s
GROUP BY s."date", s.symbol
