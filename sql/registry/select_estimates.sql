SELECT * FROM ope_estimates WHERE domain = $domain AND partition_date = $day ORDER BY policy, estimator
