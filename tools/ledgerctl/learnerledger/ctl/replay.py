"""``ledgerctl replay projections``: run or resume a read-model rebuild, showing progress.

On a terminal, with the ``cli`` extra installed (rich), a progress bar with rate and ETA;
otherwise one plain line per second at most, and one at every phase change, so logs of a long
replay stay readable.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from learnerledger.replay.rebuild import (
    ProgressCallback,
    ReplayStatus,
    connect_as_read_model_owner,
    run_replay,
    start_or_resume,
)


@contextmanager
def progress_reporter(stream: TextIO) -> Iterator[ProgressCallback]:
    if stream.isatty() and importlib.util.find_spec("rich") is not None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>9} entries/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("replay", total=None, rate="-")
            started = time.monotonic()
            first: list[int] = []

            def update(status: ReplayStatus) -> None:
                if not first:
                    first.append(status.entries_applied)
                elapsed = max(time.monotonic() - started, 1e-6)
                bar.update(
                    task,
                    description=f"replay {status.phase}",
                    completed=status.entries_applied,
                    total=max(status.entries_total, status.entries_applied),
                    rate=f"{(status.entries_applied - first[0]) / elapsed:,.0f}",
                )

            yield update
        return

    last_time = [0.0]
    last_phase = [""]
    resumed_at: list[int] = []  # entries already applied when this process started
    started = time.monotonic()

    def line(status: ReplayStatus) -> None:
        if not resumed_at:
            resumed_at.append(status.entries_applied)
        now = time.monotonic()
        if now - last_time[0] < 1.0 and status.phase == last_phase[0]:
            return
        last_time[0], last_phase[0] = now, status.phase
        rate = (status.entries_applied - resumed_at[0]) / max(now - started, 1e-6)
        print(
            f"replay {status.replay_id} {status.phase}: {status.entries_applied}/"
            f"{status.entries_total} entries, {status.learners_done} learners done, "
            f"position {status.through_position}, {rate:,.0f} entries/s",
            file=stream,
            flush=True,
        )

    yield line


async def replay_projections(
    database_url: str,
    *,
    source: str,
    learner_ids: Sequence[str],
    bootstrap_servers: str,
    entries_topic: str,
    batch: int,
    stream: TextIO | None = None,
) -> ReplayStatus:
    stream = stream or sys.stdout  # read at call time (a default argument would pin it at import)
    connection = await connect_as_read_model_owner(database_url)
    try:
        replay = await start_or_resume(connection, source=source, learner_ids=learner_ids)
        verb = "resuming" if replay.state == "running" else "starting"
        print(
            f"{verb} replay {replay.replay_id} from {source} "
            f"({', '.join(replay.learner_ids) or 'all learners'})",
            file=stream,
            flush=True,
        )
        with progress_reporter(stream) as progress:
            final = await run_replay(
                connection,
                replay,
                batch=batch,
                progress=progress,
                bootstrap_servers=bootstrap_servers,
                entries_topic=entries_topic,
            )
        print(
            f"replay {final.replay_id} {final.state}: {final.entries_applied} entries, "
            f"{final.learners_done} learners; the query service now reads the rebuilt model",
            file=stream,
            flush=True,
        )
        return final
    finally:
        await connection.close()
