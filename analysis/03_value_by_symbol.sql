-- Overall trade value by symbol: total traded value (USD) per symbol, split by venue kind (dark, lit, OTC).
SELECT
    w.symbol,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) AS dark_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'lit' THEN w.total_trade_value ELSE 0 END) AS lit_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'otc' THEN w.total_trade_value ELSE 0 END) AS otc_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'unknown' THEN w.total_trade_value ELSE 0 END) AS unknown_value,
    SUM(w.total_trade_value) AS total_value
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.symbol
ORDER BY total_value DESC, w.symbol
