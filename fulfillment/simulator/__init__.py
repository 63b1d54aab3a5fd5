"""The bundled supplier simulator: a real HTTP server speaking supplier-protocol.md.

`state` holds the supplier's books (catalog, balance, orders, nonces, faults),
`callbacks` delivers signed callbacks on the protocol's retry schedule, and
`server` puts both behind `ThreadingHTTPServer`. Run it with
`python manage.py supplier_simulator`; tests use the `supplier_simulator`
fixture (tests/fixtures/supplier_simulator.py). docs/SUPPLIER_SIMULATOR.md
lists the control API and every fault.
"""

from __future__ import annotations
