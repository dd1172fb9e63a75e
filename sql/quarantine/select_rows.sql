-- Quarantined rows and rejected files (row_number NULL), optionally of one dataset and day,
-- in load order: day, dataset, file, whole-file rejections first, then rows by number.
SELECT source AS dataset, partition_date AS day, file, row_number, reason, record
FROM quarantine
WHERE ($dataset IS NULL OR source = $dataset)
  AND ($day IS NULL OR partition_date = CAST($day AS DATE))
ORDER BY partition_date, source, file, row_number NULLS FIRST
LIMIT $limit
