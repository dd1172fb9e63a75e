SELECT * FROM policy_monitor WHERE domain = $domain ORDER BY partition_date
