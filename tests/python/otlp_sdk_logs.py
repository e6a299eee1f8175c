"""Send log records with the OpenTelemetry Python SDK's OTLP/HTTP exporter, as an application would.

Usage: otlp_sdk_logs.py ENDPOINT RUN_ID COUNT

Logs COUNT records through the standard `logging` module with the SDK's LoggingHandler, a
LoggerProvider whose resource is service.name="pyotel", service.namespace="shop",
deployment.environment="test", service.instance.id=RUN_ID and host.name="otel-host", and the
OTLPLogExporter (protobuf over HTTP) posting to ENDPOINT (the full URL, .../otlp/v1/logs).
Record i is "otel record <i> of <COUNT>" at INFO with the attribute order.id=i when i is even,
and at WARNING inside a span (so with a trace and span id) when i is odd. One more record
follows whose body is a map: {"event": "checkout", "items": 3}.

Prints one JSON object per record on stdout ({"i", "trace_id", "span_id"}, ids in hex, empty
outside a span). Exits non-zero if any export was not accepted: the SDK itself only logs
such failures.
"""

import json
import logging
import sys

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


class CheckedExporter(OTLPLogExporter):
    """An OTLPLogExporter that counts the exports the server did not accept."""

    failures = 0

    def export(self, batch):
        result = super().export(batch)
        if result != LogRecordExportResult.SUCCESS:
            CheckedExporter.failures += 1
        return result


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, run_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    resource = Resource.create(
        {
            "service.name": "pyotel",
            "service.namespace": "shop",
            "deployment.environment": "test",
            "service.instance.id": run_id,
            "host.name": "otel-host",
        }
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(CheckedExporter(endpoint=endpoint)))
    tracer = TracerProvider(resource=resource).get_tracer("shardlog-test")

    logger = logging.getLogger("shardlog-test")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))

    for i in range(count):
        message = "otel record %d of %d"
        if i % 2 == 0:
            logger.info(message, i, count, extra={"order.id": i})
            print(json.dumps({"i": i, "trace_id": "", "span_id": ""}))
        else:
            with tracer.start_as_current_span("checkout") as span:
                ctx = span.get_span_context()
                logger.warning(message, i, count)
                print(
                    json.dumps(
                        {"i": i, "trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
                    )
                )
    logger.info({"event": "checkout", "items": 3})
    provider.shutdown()
    if CheckedExporter.failures:
        print(f"{CheckedExporter.failures} exports failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
