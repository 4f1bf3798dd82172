"""Prometheus metrics, written in the text exposition format by hand (no extra dependency).

Counters live in this process: with `serve --workers N` each scrape sees one worker, which
Prometheus sums across scrapes of the same target only if each worker is scraped; the
figures are for trends and alerts, the ledger itself is the record.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        brace = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{brace} {self.total:.6f}")
        out.append(f"{name}_count{brace} {self.n}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts and latencies by route, ledger size, appends and batch sizes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, _Histogram] = {}
        self._size = 0
        self._appends = 0
        self._batches = _Histogram(BATCH_BUCKETS)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(route, method, status)] += 1
            hist = self._latency.get(route)
            if hist is None:
                hist = self._latency[route] = _Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def size(self, size: int) -> None:
        self._size = max(self._size, size)

    def batch(self, n: int) -> None:
        with self._lock:
            self._appends += n
            self._batches.observe(n)

    def render(self) -> str:
        with self._lock:
            out = [
                "# HELP modelchain_http_requests_total HTTP requests by route, method and status.",
                "# TYPE modelchain_http_requests_total counter",
            ]
            for (route, method, status), n in sorted(self._requests.items()):
                out.append(
                    f'modelchain_http_requests_total{{route="{_escape(route)}",'
                    f'method="{method}",status="{status}"}} {n}'
                )
            out += [
                "# HELP modelchain_http_request_duration_seconds Time to answer, by route.",
                "# TYPE modelchain_http_request_duration_seconds histogram",
            ]
            for route, hist in sorted(self._latency.items()):
                out += hist.lines(
                    "modelchain_http_request_duration_seconds", f'route="{_escape(route)}"'
                )
            out += [
                "# HELP modelchain_ledger_size Entries covered by the newest checkpoint seen.",
                "# TYPE modelchain_ledger_size gauge",
                f"modelchain_ledger_size {self._size}",
                "# HELP modelchain_appends_total Registrations appended by this process.",
                "# TYPE modelchain_appends_total counter",
                f"modelchain_appends_total {self._appends}",
                "# HELP modelchain_append_batch_size Registrations per transaction and signature.",
                "# TYPE modelchain_append_batch_size histogram",
                *self._batches.lines("modelchain_append_batch_size", ""),
            ]
        return "\n".join(out) + "\n"
