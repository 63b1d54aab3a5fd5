"""Storefront pages that put catalog and stock side by side (home, product).

The catalog app knows nothing of stock; fulfillment knows stock. The pages a
shopper browses need both, so they live here and import both.
"""
