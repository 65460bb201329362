"""Named HTTP connectors (Zendesk, CRMs) and the durable after-call comment outbox."""

from payivr.connectors.client import ConnectorClient, ConnectorError, ConnectorResponse

__all__ = ["ConnectorClient", "ConnectorError", "ConnectorResponse"]
