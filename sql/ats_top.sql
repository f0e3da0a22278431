-- Top ATSs by shares over every loaded week: shares, trades, average trade size and share of all ATS volume.
SELECT
    a.mpid,
    MAX(a.ats_name) AS ats_name,
    SUM(a.shares) AS shares,
    SUM(a.trades) AS trades,
    CAST(SUM(a.shares) AS DOUBLE) / SUM(SUM(a.shares)) OVER () AS ats_share,
    COUNT(DISTINCT a.symbol) AS symbols,
    COUNT(DISTINCT a.week_start) AS weeks
FROM ats_weekly AS a
GROUP BY a.mpid
ORDER BY shares DESC, a.mpid
