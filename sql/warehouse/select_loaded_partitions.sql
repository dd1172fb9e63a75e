SELECT DISTINCT partition_date FROM {{table}} WHERE partition_date BETWEEN $start AND $end
ORDER BY partition_date
