"""Running call flows on calls: the flow engine's commands carried out by the one
executor (payivr.execution), with the ports a flow needs (connectors, the comment
outbox, the event stream, payments) behind small interfaces (``context``)."""
