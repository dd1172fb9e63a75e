DELETE FROM {{table}} WHERE source = $source AND partition_date = $day
