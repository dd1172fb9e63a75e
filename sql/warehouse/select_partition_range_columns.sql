SELECT COLUMNS(lambda c: list_contains($columns, c)) FROM {{table}}
WHERE partition_date BETWEEN $start AND $end ORDER BY ALL
