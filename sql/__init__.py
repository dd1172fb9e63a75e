"""The warehouse's SQL statements, one per file (``<folder>/<verb_object>.sql``), shipped as
package data and read through ``importlib.resources`` (``offline_rl.data.warehouse.sql_text``)."""
