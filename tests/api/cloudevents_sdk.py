"""Read CloudEvents with the CloudEvents Python SDK (PyPI `cloudevents`, 2.x).

    python3 cloudevents_sdk.py batch FILE   # a JSON array (application/cloudevents-batch+json)
    python3 cloudevents_sdk.py lines FILE   # one structured event a line (SSE data, export)

Each event is parsed by the SDK's structured JSON format, which checks the
required attributes (specversion 1.0, id, source, type) and the optional ones
(time a timestamp, subject and datacontenttype non-empty, extension names).
Prints what the SDK read, one JSON object a line, for the test to compare with
the server's own answer; exits non-zero on the first event the SDK refuses.
Exit 3 when the SDK is not installed.
"""

import json
import sys

try:
    from cloudevents.core.formats.json import JSONFormat
except ImportError as e:
    print(f"the cloudevents SDK (pip install 'cloudevents>=2') is missing: {e}", file=sys.stderr)
    sys.exit(3)


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if mode == "batch":
        items = [json.dumps(item) for item in json.loads(text)]
    else:
        items = [line for line in text.splitlines() if line.strip()]
    fmt = JSONFormat()
    for raw in items:
        event = fmt.read(None, raw.encode("utf-8"))
        print(
            json.dumps(
                {
                    "specversion": event.get_specversion(),
                    "id": event.get_id(),
                    "source": event.get_source(),
                    "type": event.get_type(),
                    "subject": event.get_subject(),
                    "time": event.get_time().isoformat(),
                    "sequence": event.get_extension("sequence"),
                    "datacontenttype": event.get_datacontenttype(),
                    "data": event.get_data(),
                }
            )
        )


main()
