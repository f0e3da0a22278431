-- Symbols ranked by dark share: the fraction of each symbol's traded value that printed on dark pools / ATSs.
SELECT
    w.symbol,
    SUM(w.total_trade_value) AS total_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) AS dark_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END)
        / SUM(w.total_trade_value) AS dark_share,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') IN ('dark', 'otc') THEN w.total_trade_value ELSE 0 END)
        / SUM(w.total_trade_value) AS off_exchange_share,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.block_trades ELSE 0 END) AS dark_block_trades
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
GROUP BY w.symbol
ORDER BY dark_share DESC, w.symbol
