SELECT count(*) AS n
FROM quarantine
WHERE source = $source AND partition_date = $day AND row_number IS NOT NULL
