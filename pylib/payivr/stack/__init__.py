"""The local stack (Redis, Kamailio, FreeSWITCH when found, ESL app, callback worker)
brought up from one config on loopback ports, and the end-to-end demo on top of it."""
