-- ATS market share per symbol and week: each ATS's shares as a fraction of all ATS shares in that symbol and week (FINRA OTC Transparency).
SELECT
    a.week_start,
    a.symbol,
    a.mpid,
    a.ats_name,
    a.shares,
    a.trades,
    CAST(a.shares AS DOUBLE) / SUM(a.shares) OVER (PARTITION BY a.week_start, a.symbol) AS ats_share,
    RANK() OVER (PARTITION BY a.week_start, a.symbol ORDER BY a.shares DESC) AS ats_rank
FROM ats_weekly AS a
ORDER BY a.week_start, a.symbol, a.shares DESC, a.mpid
