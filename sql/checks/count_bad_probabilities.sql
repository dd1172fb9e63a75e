SELECT count(*) AS n
FROM {{table}}
WHERE partition_date = $day AND {{prob}} IS NOT NULL AND NOT ({{prob}} > 0 AND {{prob}} <= 1)
