-- Block prints: trades of >= 10,000 shares or >= $200,000 notional, newest first, with where they printed.
SELECT
    t."timestamp",
    t.symbol,
    t.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    t.price,
    t.quantity,
    t.trade_value,
    t.side,
    t.order_type,
    t.order_id
FROM trades AS t
LEFT JOIN venues AS v ON v.code = t.venue
WHERE t.quantity >= 10000 OR t.trade_value >= 200000
ORDER BY t."timestamp" DESC, t.symbol, t.venue, t.order_id
