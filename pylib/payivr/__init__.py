"""payivr: a PCI-compliant payment IVR for contact centers."""

__version__ = "0.1.0"
