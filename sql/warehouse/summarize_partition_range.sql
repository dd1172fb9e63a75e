SELECT count(*) AS n, count(*) FILTER (WHERE partition_date = $day) AS n_day,
       max(partition_date) AS last_day
FROM {{table}} WHERE partition_date BETWEEN $start AND $end
