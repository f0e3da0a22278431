-- ATS market share by week: percent of all ATS shares each of the 8 largest ATSs executed per week (FINRA OTC Transparency, latest publication; the rest as OTHER).
WITH totals AS (
    SELECT a.mpid, SUM(a.shares) AS shares
    FROM ats_weekly AS a
    GROUP BY a.mpid
),
top_ats AS (
    SELECT t.mpid
    FROM totals AS t
    ORDER BY t.shares DESC, t.mpid
    LIMIT 8
)
SELECT
    a.week_start AS day,
    CASE WHEN t.mpid IS NULL THEN 'OTHER' ELSE a.mpid END AS series,
    100.0 * SUM(a.shares) / SUM(SUM(a.shares)) OVER (PARTITION BY a.week_start) AS share_pct
FROM ats_weekly AS a
LEFT JOIN top_ats AS t ON t.mpid = a.mpid
GROUP BY a.week_start, CASE WHEN t.mpid IS NULL THEN 'OTHER' ELSE a.mpid END
ORDER BY day, series
