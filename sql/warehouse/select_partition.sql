SELECT * FROM {{table}} WHERE partition_date = $day
