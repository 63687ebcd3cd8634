"""The storm as a user would script it instead of running serve:
python-slack-sdk's AsyncWebClient with asyncio, one task per channel posting
that channel's messages one second apart, with the SDK's own 429 handling
(AsyncRateLimitErrorRetryHandler, which waits out Retry-After).

    python3 slack_sdk_storm.py BASE_URL PAYLOADS.json

PAYLOADS.json is a list of channels, each a list of chat.postMessage
payloads in order (the bodies serve posted for the same alerts). Prints one
JSON line: {"delivered": N, "failed": N, "took": SECONDS}, where took runs
from the first post to the last answer (the interpreter's start-up is not
counted). Called by `cargo bench -p host-test --bench storm -- --compare`.
"""

import asyncio
import json
import sys
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

# Slack's limit: about one message a second per channel.
PACE = 1.0


async def post_channel(client: AsyncWebClient, payloads: list, tally: dict) -> None:
    for n, payload in enumerate(payloads):
        # A second between one post's answer and the next post, as a script
        # is written. Timing posts a second apart from their starts instead
        # meets 429s: Slack counts arrivals, which a new connection's setup
        # delays by varying amounts, and each 429's one-second wait puts the
        # channel's next post inside the same second again.
        if n > 0:
            await asyncio.sleep(PACE)
        try:
            await client.chat_postMessage(**payload)
            tally["delivered"] += 1
        except SlackApiError as e:
            tally["failed"] += 1
            print(f"failed: {e.response.status_code} {e.response.get('error')}", file=sys.stderr)
        except Exception as e:  # a connection refused or reset: lost as well
            tally["failed"] += 1
            print(f"failed: {e!r}", file=sys.stderr)
        tally["last"] = time.perf_counter()


async def main() -> None:
    base_url, payload_file = sys.argv[1], sys.argv[2]
    with open(payload_file, encoding="utf-8") as f:
        channels = json.load(f)
    client = AsyncWebClient(token="xoxb-storm", base_url=base_url.rstrip("/") + "/api/")
    # As the SDK's documentation shows: retry once after a 429's Retry-After.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    tally = {"delivered": 0, "failed": 0, "last": 0.0}
    started = time.perf_counter()
    await asyncio.gather(*(post_channel(client, payloads, tally) for payloads in channels))
    print(
        json.dumps(
            {
                "delivered": tally["delivered"],
                "failed": tally["failed"],
                "took": tally["last"] - started,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
