SELECT *
FROM policy_registry
WHERE domain = $domain AND promoted AND export_version = $version AND partition_date < $day
ORDER BY partition_date DESC, decided_at DESC
LIMIT 1
