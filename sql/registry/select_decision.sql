SELECT * FROM policy_registry WHERE domain = $domain AND partition_date = $day
