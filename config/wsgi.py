from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from config.lib.gcheap import heap_freeze

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# The startup heap out of the cyclic GC's full collections (config/lib/gcheap.py).
heap_freeze()
