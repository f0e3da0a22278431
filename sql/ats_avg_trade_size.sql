-- Average trade size per ATS (shares / trades over every loaded week): small averages suggest algorithmic child orders, large ones block crossing.
SELECT
    a.mpid,
    MAX(a.ats_name) AS ats_name,
    SUM(a.shares) AS shares,
    SUM(a.trades) AS trades,
    CAST(SUM(a.shares) AS DOUBLE) / NULLIF(SUM(a.trades), 0) AS avg_trade_size
FROM ats_weekly AS a
GROUP BY a.mpid
ORDER BY avg_trade_size DESC NULLS LAST, a.mpid
