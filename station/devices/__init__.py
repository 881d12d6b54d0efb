"""Talking to smart cards and tokens: transports, the PIV protocol, virtual devices."""
