SELECT count(*) AS n FROM {{table}} WHERE partition_date = $day
