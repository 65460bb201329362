"""One module per flow command (payivr.core.flow.commands); registered in
payivr.execution.registry.FLOW_REGISTRY."""
