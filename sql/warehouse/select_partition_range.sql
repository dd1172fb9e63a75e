SELECT * FROM {{table}} WHERE partition_date BETWEEN $start AND $end ORDER BY ALL
