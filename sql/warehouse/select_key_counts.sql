SELECT {{key}} AS key, count(*) AS n FROM {{table}}
WHERE partition_date BETWEEN $start AND $end GROUP BY ALL ORDER BY key NULLS FIRST
