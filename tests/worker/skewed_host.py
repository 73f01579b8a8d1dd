"""A worker host whose clock is off by SKEW seconds (run as a process by the clock-skew test).

Every clock reading in this process is shifted (freezegun, ticking), as on a
host whose NTP is broken; a second host is what cannot run here. It claims a
job, then beats for it each time the test writes a line to its stdin, and
answers each beat with a line on stdout so the test waits by events, not time.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time


def main(skew_seconds: float) -> None:
    with freeze_time(datetime.now(UTC) + timedelta(seconds=skew_seconds), tick=True):
        from core import jobs
        from core.db import transaction
        from core.scheduling import claim_next_job
        from core.settings import get_settings

        settings = get_settings()
        with transaction(settings.resolved_database_url) as session:
            claimed = claim_next_job(session, settings, "skewed-host")
            assert claimed is not None
        print(f"claimed {claimed.id}", flush=True)
        for _ in sys.stdin:
            with transaction(settings.resolved_database_url) as session:
                jobs.heartbeat(session, claimed.id)
            print("beat", flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]))
