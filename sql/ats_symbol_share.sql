-- One symbol's ATS market share by week (parameter $symbol): shares per ATS and its fraction of the symbol's ATS volume that week.
SELECT
    a.week_start,
    a.mpid,
    a.ats_name,
    a.shares,
    a.trades,
    CAST(a.shares AS DOUBLE) / SUM(a.shares) OVER (PARTITION BY a.week_start) AS ats_share
FROM ats_weekly AS a
WHERE a.symbol = $symbol
ORDER BY a.week_start, a.shares DESC, a.mpid
