DELETE FROM {{table}} WHERE domain = $domain AND partition_date = $day
