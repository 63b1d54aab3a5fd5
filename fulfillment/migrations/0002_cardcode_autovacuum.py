"""The code pool is a queue table: vacuum it eagerly (docs/performance-notes.md, lesson 2).

Sold rows leave dead entries at the head of the claim index; with default
autovacuum, claim throughput decayed ~4x within a minute in measurements.
PostgreSQL only; a no-op elsewhere.
"""

from django.db import migrations

TUNED = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, "
    "autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02, "
    # Always clean the claim index: VACUUM otherwise skips it when under 2 % of pages
    # hold dead rows, and claims then read ~100 dead index pages (PERFORMANCE.md).
    "vacuum_index_cleanup = on"
)
RESET = (
    "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
    "autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor, vacuum_index_cleanup"
)


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE fulfillment_cardcode SET ({TUNED})")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE fulfillment_cardcode RESET ({RESET})")


class Migration(migrations.Migration):
    dependencies = [("fulfillment", "0001_initial")]
    operations = [migrations.RunPython(tune, untune)]
