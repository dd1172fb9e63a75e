SELECT * FROM policy_registry WHERE domain = $domain ORDER BY partition_date, decided_at
