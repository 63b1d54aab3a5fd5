"""The partner API's use cases (SPEC §4.4): keys and signatures, the prepaid
balance, idempotent orders. The HTTP layer is distribution/api/; webhooks are
distribution/webhooks.py."""
