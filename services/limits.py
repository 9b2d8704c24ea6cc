"""Bounds of the services layer, each with its reason. Body field bounds live next to each
body type (msgspec `Meta`), since they are part of that body's documented format."""

# Genesis: one row per agency in state and one line per agency in `agency/list`.
agencies_max = 256
agency_name_chars_max = 64
agency_roles_max = 16
role_chars_max = 32

# Queries: a page is built in memory and serialised to JSON in one RPC answer.
query_page_default = 20
query_page_max = 100
query_param_chars_max = 256

# Writes one tx may make. Services write a handful of keys; more is a bug in a service.
tx_writes_max = 64

assert query_page_default <= query_page_max
