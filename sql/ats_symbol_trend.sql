-- One symbol's weekly ATS volume trend (parameter $symbol): shares, trades, ATS count, the leading ATS and the change from the previous loaded week.
WITH weekly AS (
    SELECT
        a.week_start,
        SUM(a.shares) AS shares,
        SUM(a.trades) AS trades,
        COUNT(*) AS ats_count,
        FIRST_VALUE(a.mpid ORDER BY a.shares DESC, a.mpid) AS top_mpid
    FROM ats_weekly AS a
    WHERE a.symbol = $symbol
    GROUP BY a.week_start
)
SELECT
    w.week_start,
    w.shares,
    w.trades,
    w.ats_count,
    w.top_mpid,
    CAST(w.shares AS DOUBLE) / LAG(w.shares) OVER (ORDER BY w.week_start) - 1 AS shares_change
FROM weekly AS w
ORDER BY w.week_start
