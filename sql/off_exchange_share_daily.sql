-- Off-exchange share of volume per symbol and trading day (US/Eastern dates): shares printed off exchanges (ATS/dark and FINRA TRF/ADF, e.g. TAQ code D) over all shares.
WITH t AS (
    SELECT
        CAST(date_trunc('day', tr."timestamp" AT TIME ZONE 'America/New_York') AS DATE) AS trade_date,
        tr.symbol,
        tr.quantity,
        COALESCE(v.kind, 'unknown') AS kind,
        COALESCE(tr.extended_hours, false) AS extended_hours
    FROM trades AS tr
    LEFT JOIN venues AS v ON v.code = tr.venue
)
SELECT
    t.trade_date,
    t.symbol,
    COUNT(*) AS trades,
    SUM(t.quantity) AS shares,
    SUM(CASE WHEN t.kind IN ('dark', 'otc') THEN t.quantity ELSE 0 END) AS off_exchange_shares,
    CAST(SUM(CASE WHEN t.kind IN ('dark', 'otc') THEN t.quantity ELSE 0 END) AS DOUBLE) / SUM(t.quantity) AS off_exchange_share,
    SUM(CASE WHEN t.kind = 'lit' THEN t.quantity ELSE 0 END) AS lit_shares,
    SUM(CASE WHEN t.kind = 'unknown' THEN t.quantity ELSE 0 END) AS unknown_venue_shares,
    SUM(CASE WHEN t.quantity < 100 THEN t.quantity ELSE 0 END) AS odd_lot_shares,
    SUM(CASE WHEN t.extended_hours THEN t.quantity ELSE 0 END) AS extended_hours_shares
FROM t
GROUP BY t.trade_date, t.symbol
ORDER BY t.trade_date, t.symbol
