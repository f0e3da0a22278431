-- Short-sale volume by reporting facility per symbol and day (the TRF/ADF/ORF files, CNMS left out as their sum): each facility's volume, short ratio and share of the symbol's off-exchange volume.
SELECT
    s."date",
    s.symbol,
    s.facility,
    s.short_volume,
    s.total_volume,
    s.short_volume / NULLIF(s.total_volume, 0) AS short_ratio,
    s.total_volume / NULLIF(SUM(s.total_volume) OVER (PARTITION BY s."date", s.symbol), 0) AS volume_share
FROM short_volume AS s
WHERE s.facility <> 'CNMS'
ORDER BY s."date", s.symbol, s.facility
