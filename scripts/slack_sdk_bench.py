"""Posts the handler's payload N times with python-slack-sdk's WebClient to a
Slack stand-in, and prints the seconds it took (the interpreter's start-up
and one warm-up call are not counted). Called by `cargo bench`."""

import json
import sys
import time

from slack_sdk import WebClient


def main() -> None:
    base_url, count, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(body_file, encoding="utf-8") as f:
        payload = json.load(f)
    client = WebClient(token="xoxb-bench", base_url=base_url.rstrip("/") + "/api/")
    client.chat_postMessage(**payload)
    started = time.perf_counter()
    for _ in range(count):
        client.chat_postMessage(**payload)
    print(time.perf_counter() - started)


if __name__ == "__main__":
    main()
