-- Symbols in the FINRA tables (ATS weekly volume, Reg SHO short volume), the most ATS shares first.
WITH ats AS (
    SELECT a.symbol, SUM(a.shares) AS ats_shares, COUNT(DISTINCT a.week_start) AS weeks
    FROM ats_weekly AS a
    GROUP BY a.symbol
),
short_days AS (
    SELECT s.symbol, COUNT(DISTINCT s."date") AS days
    FROM short_volume AS s
    GROUP BY s.symbol
)
SELECT
    COALESCE(a.symbol, d.symbol) AS symbol,
    COALESCE(a.ats_shares, 0) AS ats_shares,
    COALESCE(a.weeks, 0) AS ats_weeks,
    COALESCE(d.days, 0) AS short_volume_days
FROM ats AS a
FULL OUTER JOIN short_days AS d ON d.symbol = a.symbol
ORDER BY ats_shares DESC, short_volume_days DESC, symbol
