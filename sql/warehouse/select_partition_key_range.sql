SELECT * FROM {{table}}
WHERE partition_date = $day
  AND CASE WHEN {{key}} IS NULL THEN $with_null
           ELSE ($low IS NULL OR {{key}} >= $low) AND ($high IS NULL OR {{key}} < $high) END
