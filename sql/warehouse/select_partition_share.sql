SELECT * FROM {{table}} WHERE partition_date = $day AND hash({{key}}) % $shares = $share
