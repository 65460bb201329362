"""Kamailio glue: the KEMI router, the files generated for kamailio.cfg, the runner."""
