"""One module per command (payivr.core.plan.commands); registered in ..registry."""
