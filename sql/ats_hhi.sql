-- Concentration of ATS volume per symbol and week: the Herfindahl-Hirschman index of ATS shares (0-10,000; above 2,500 is highly concentrated).
WITH shares AS (
    SELECT
        a.week_start,
        a.symbol,
        a.shares,
        CAST(a.shares AS DOUBLE) / SUM(a.shares) OVER (PARTITION BY a.week_start, a.symbol) AS ats_share
    FROM ats_weekly AS a
)
SELECT
    s.week_start,
    s.symbol,
    COUNT(*) AS ats_count,
    SUM(s.shares) AS shares,
    SUM((s.ats_share * 100) * (s.ats_share * 100)) AS hhi,
    MAX(s.ats_share) AS top_ats_share
FROM shares AS s
GROUP BY s.week_start, s.symbol
ORDER BY s.week_start, s.symbol
