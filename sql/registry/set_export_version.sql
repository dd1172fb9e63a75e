UPDATE policy_registry SET export_version = $version WHERE domain = $domain AND partition_date = $day
