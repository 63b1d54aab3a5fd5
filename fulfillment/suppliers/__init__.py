"""Supplier adapters (docs: ../shared/docs/supplier-protocol.md)."""
