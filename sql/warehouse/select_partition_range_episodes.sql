SELECT COLUMNS(lambda c: list_contains($columns, c)) FROM {{table}}
WHERE partition_date BETWEEN $start AND $end
  AND episode_id IN (SELECT episode_id FROM kept_episodes)
ORDER BY ALL
