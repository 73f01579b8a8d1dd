"""Prometheus metrics.

Counters and histograms are recorded by many processes (one per job, the API,
the webhook dispatcher), so they use prometheus_client's multi-process mode:
each process writes files into one directory per host (``multiprocess``), and
whoever serves ``/metrics`` adds them up. Gauges about the whole service (jobs
by status, queue depth, running jobs per worker, GPU memory) are read at
scrape time from the database, Redis and NVML instead (``database``,
``queue``, ``gpu``), so they are right however many processes come and go.

This package's ``__init__`` imports nothing: ``multiprocess`` must run before
anything imports prometheus_client.
"""
