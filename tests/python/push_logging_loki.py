"""Send log records to a Loki push endpoint with python-logging-loki, as an application would.

Usage: push_logging_loki.py URL RUN_ID COUNT

Logs COUNT records through logging_loki.LokiHandler (emitter version "1", JSON to
/loki/api/v1/push), one push per record, with the tags app="pyclient" and run=RUN_ID.
Records alternate between INFO and WARNING, so they land in two streams (the client adds
the level as the `severity` label and the logger name as `logger`). Record i carries the
message "record <i> of <COUNT> from python". Exits non-zero if any push was not answered
with 204: the library itself only prints such failures.
"""

import logging
import sys

import logging_loki


class CheckedLokiHandler(logging_loki.LokiHandler):
    """A LokiHandler that remembers failed pushes instead of only printing them."""

    failures = 0

    def handleError(self, record):
        CheckedLokiHandler.failures += 1
        super().handleError(record)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, run_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    handler = CheckedLokiHandler(url=url, tags={"app": "pyclient", "run": run_id}, version="1")
    logger = logging.getLogger("shardlog-test")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    for i in range(count):
        level = logging.INFO if i % 2 == 0 else logging.WARNING
        logger.log(level, "record %d of %d from python", i, count)
    handler.close()
    if CheckedLokiHandler.failures:
        print(f"{CheckedLokiHandler.failures} pushes failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
