SELECT count(*) - count(DISTINCT {{key}}) AS n FROM {{table}} WHERE partition_date = $day
