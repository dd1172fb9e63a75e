SELECT partition_date, episode_id, count(*) AS n FROM {{table}}
WHERE partition_date BETWEEN $start AND $end GROUP BY ALL ORDER BY ALL
