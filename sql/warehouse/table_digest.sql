SELECT count(*) AS n, md5(coalesce(string_agg(r, chr(10) ORDER BY r), '')) AS digest
FROM (SELECT CAST(t AS VARCHAR) AS r FROM {{table}} AS t)
