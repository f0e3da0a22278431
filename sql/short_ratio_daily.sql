-- Short volume ratio per symbol and day (FINRA Reg SHO): the consolidated CNMS file when loaded, else the sum of the facility files.
SELECT
    d."date",
    d.symbol,
    d.short_volume,
    d.short_exempt_volume,
    d.total_volume,
    d.short_volume / NULLIF(d.total_volume, 0) AS short_ratio,
    d.source
FROM short_volume_daily AS d
ORDER BY d."date", d.symbol
