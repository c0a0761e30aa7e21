"""A pytest plugin of the GPU lane: every test's outcome is a record of the lane's JSON as soon as
it is known (so a crash keeps the outcomes so far), tests already recorded by an earlier attempt
are deselected, and a test that would not fit in the deadline is skipped and recorded so."""
from __future__ import annotations

import json
import time

import pytest

BUDGET_REASON = "lane budget"


class LanePlugin:
    def __init__(self, results, progress, deadline: float, estimate_s: float):
        self.results, self.progress = results, progress
        self.deadline, self.estimate_s = deadline, estimate_s
        self._started: dict = {}

    def pytest_collection_modifyitems(self, config, items):
        done = self.results.done_items("correctness")
        keep = [it for it in items if it.nodeid not in done]
        if len(keep) != len(items):
            config.hook.pytest_deselected(items=[it for it in items if it.nodeid in done])
            items[:] = keep

    def pytest_runtest_logstart(self, nodeid, location):
        self._started[nodeid] = time.time()
        self.progress.write_text(json.dumps(dict(step="correctness", item=nodeid, test=nodeid,
                                                 started=time.time())))

    def pytest_runtest_setup(self, item):
        if time.time() + self.estimate_s > self.deadline:
            pytest.skip(BUDGET_REASON)

    def pytest_runtest_logreport(self, report):
        final = report.when == "call" or (report.when == "setup" and not report.passed)
        if not final:
            return
        status = report.outcome
        error = None
        if report.skipped:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            status = "skipped: budget" if BUDGET_REASON in reason else "skipped"
            error = reason
        elif report.failed:
            error = report.longreprtext[-3000:]
        self.results.append(dict(step="correctness", item=report.nodeid, test=report.nodeid,
                                 status=status, error=error,
                                 wall_s=time.time() - self._started.get(report.nodeid, time.time())))
