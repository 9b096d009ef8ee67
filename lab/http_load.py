"""A steady HTTP client for the lab: requests URLs in turn until stopped, counts failures.

Run inside the client's namespace (stdlib only)::

    ip netns exec lbpair-client python3 lab/http_load.py http://203.0.113.10/ http://203.0.113.20/

It prints ``ready`` once started; on SIGUSR1 it prints the counts so far as one JSON line,
``{"requests": N, "failures": N, "failed": [request numbers], "examples": [...]}``; on SIGTERM
or SIGINT it prints them and exits. Requests are numbered from 1 when sent; a failure is known
only when its request ends (up to 2 s later), so ``failed`` says which request it was. Each request has a 2 s
timeout and a new connection, so a listener that goes away during a reload is noticed.
"""

import http.client
import json
import signal
import sys
import time
import urllib.request

PAUSE = 0.01  # between requests: steady load without spinning


def main(urls):
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    requests, failed, examples = 0, [], []

    def report(*_):
        counts = {"requests": requests, "failures": len(failed), "failed": failed, "examples": examples}
        print(json.dumps(counts), flush=True)

    signal.signal(signal.SIGUSR1, report)
    print("ready", flush=True)
    while not stopping:
        url = urls[requests % len(urls)]
        requests += 1
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                answer.read()
        except (OSError, http.client.HTTPException) as error:  # a server killed mid-answer: IncompleteRead
            failed.append(requests)
            if len(examples) < 5:
                examples.append(f"request {requests} at {time.monotonic():.3f}: {url}: {error}")
        time.sleep(PAUSE)
    report()


if __name__ == "__main__":
    main(sys.argv[1:])
