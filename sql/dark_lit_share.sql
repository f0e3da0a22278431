-- Dark vs lit per window and symbol: traded value by venue kind, with the dark (ATS) and off-exchange (dark + OTC) shares.
-- Venue kinds come from the venue registry (the venues table), never from the venue code's spelling.
SELECT
    w.window_start,
    w.window_end,
    w.symbol,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) AS dark_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'lit' THEN w.total_trade_value ELSE 0 END) AS lit_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'otc' THEN w.total_trade_value ELSE 0 END) AS otc_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'unknown' THEN w.total_trade_value ELSE 0 END) AS unknown_value,
    SUM(w.total_trade_value) AS total_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END)
        / SUM(w.total_trade_value) AS dark_share,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') IN ('dark', 'otc') THEN w.total_trade_value ELSE 0 END)
        / SUM(w.total_trade_value) AS off_exchange_share
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.window_start, w.window_end, w.symbol
ORDER BY w.window_start, w.symbol
