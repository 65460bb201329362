"""FreeSWITCH configuration for payivr: settings derived from a payivr Config, rendering."""
