"""import_codes.py's PipelineProbe: CPU and copier-thread figures taken around the
new-code import."""

from __future__ import annotations

import resource
import time
from typing import Any

import benchlib


class PipelineProbe:
    """Where a new-code import's wall time goes, seen from outside the service.

    CPU seconds of this process (reading, HMAC, the copier thread), of the sealing
    processes (reaped when the import ends) and of the import's PostgreSQL backend;
    on the copier thread, the COPYs' time and, within it, the time they waited for
    sealed parts (code_copy.CopyStream.read, where the tree has it); the tail after
    the stream (the batch counts and the COMMIT with its deferred foreign-key checks).
    """

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}

    def __enter__(self) -> PipelineProbe:
        from django.db import connection

        from fulfillment.services import code_copy, code_import

        figures = self.figures
        figures.update(copy_s=0.0, copy_wait_s=0.0, copies=0)
        self._patched: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, name: str, wrapper: Any) -> None:
            self._patched.append((owner, name, getattr(owner, name)))
            setattr(owner, name, wrapper)

        copy_chunk, run = code_import.copy_chunk, code_import._Stream.run

        def timed_copy(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return copy_chunk(*args)
            finally:
                figures["copy_s"] += time.perf_counter() - t
                figures["copies"] += 1

        def timed_run(stream: Any, **kwargs: Any) -> Any:
            try:
                return run(stream, **kwargs)
            finally:
                figures["stream_end_s"] = time.perf_counter() - self._t0

        patch(code_import, "copy_chunk", timed_copy)
        patch(code_import._Stream, "run", timed_run)
        if hasattr(code_copy, "CopyStream"):
            read = code_copy.CopyStream.read

            def timed_read(stream: Any, size: int = -1) -> bytes:
                t = time.perf_counter()
                try:
                    data: bytes = read(stream, size)
                    return data
                finally:
                    now = time.perf_counter()
                    figures["copy_wait_s"] += now - t
                    figures.setdefault("first_data_s", now - self._t0)

            patch(code_copy.CopyStream, "read", timed_read)
        connection.ensure_connection()
        self._backend = connection.connection.info.backend_pid
        self._cpu0 = (
            _cpu(resource.RUSAGE_SELF),
            _cpu(resource.RUSAGE_CHILDREN),
            benchlib.proc_cpu_seconds(self._backend) or 0.0,
        )
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        main0, sealers0, pg0 = self._cpu0
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self.figures.update(
            wall_s=wall,
            cpu_main_s=_cpu(resource.RUSAGE_SELF) - main0,
            cpu_sealers_s=_cpu(resource.RUSAGE_CHILDREN) - sealers0,
            cpu_postgres_s=(benchlib.proc_cpu_seconds(self._backend) or 0.0) - pg0,
            tail_s=wall - self.figures.get("stream_end_s", wall),
        )


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
