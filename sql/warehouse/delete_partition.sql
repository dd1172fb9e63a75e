DELETE FROM {{table}} WHERE partition_date = $day
