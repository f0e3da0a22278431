-- Dark pool vs lit exchange value over time: traded value (USD) per window by venue kind, all symbols together.
SELECT
    w.window_start,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) AS dark_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'lit' THEN w.total_trade_value ELSE 0 END) AS lit_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'otc' THEN w.total_trade_value ELSE 0 END) AS otc_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'unknown' THEN w.total_trade_value ELSE 0 END) AS unknown_value,
    SUM(w.total_trade_value) AS total_value
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.window_start
ORDER BY w.window_start
