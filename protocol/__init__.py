"""The codec generator (python -m protocol.generate)."""
