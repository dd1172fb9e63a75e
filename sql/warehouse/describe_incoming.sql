SELECT column_name, column_type FROM (DESCRIBE incoming)
