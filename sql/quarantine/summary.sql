-- Per file and reason: entries, quarantined rows among them (rejected files have no row
-- number) and the first row number, optionally of one dataset and day.
SELECT source AS dataset, partition_date AS day, file, reason, count(*) AS n,
       count(row_number) AS rows, min(row_number) AS first_row
FROM quarantine
WHERE ($dataset IS NULL OR source = $dataset)
  AND ($day IS NULL OR partition_date = CAST($day AS DATE))
GROUP BY source, partition_date, file, reason
ORDER BY partition_date, source, file, n DESC, reason
