-- Dark share over time per symbol: percent of each symbol's traded value per window that printed on dark pools / ATSs (kind from the registry).
SELECT
    w.window_start,
    w.symbol,
    100.0 * SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END)
        / SUM(w.total_trade_value) AS dark_share_pct,
    100.0 * SUM(CASE WHEN COALESCE(v.kind, 'unknown') IN ('dark', 'otc') THEN w.total_trade_value ELSE 0 END)
        / SUM(w.total_trade_value) AS off_exchange_share_pct,
    SUM(w.total_trade_value) AS total_value
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.window_start, w.symbol
ORDER BY w.window_start, w.symbol
