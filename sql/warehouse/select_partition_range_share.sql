SELECT * FROM {{table}}
WHERE partition_date BETWEEN $start AND $end AND hash({{key}}) % $shares = $share ORDER BY ALL
