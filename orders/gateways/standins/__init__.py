"""Local stand-ins for the real payment gateways, for tests and development.

Each signs, verifies and encrypts exactly as its gateway does and is served over
HTTP on loopback from a thread (see server.py). Nothing in the shop imports them.
"""
