"""Send maximum-size requests to a server, from their own process, and print each one's status as JSON.

Used by ``compat_tests/test_event_loop_stalls.py``: the requests run in a process of their own so that
encoding and reading 8 MiB bodies does not hold the probing process's GIL and distort its ``/health``
timings. Usage: ``python -m compat_tests.big_requests URL ROUNDS BODY_FILE...``, each body file named
``<path with / as ~>.json`` (``v1~embeddings.json`` posts to ``/v1/embeddings``). Prints ``started``
once every connection is open, then one JSON object ``{file: [status, ...]}`` when all are done.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import httpx


def main(url: str, rounds: int, files: list[Path]) -> None:
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(len(files) + 1)

    def send(file: Path) -> None:
        body = file.read_bytes()
        path = "/" + file.stem.split(".")[0].replace("~", "/")
        with httpx.Client(base_url=url, timeout=600) as client:
            client.get("/health")  # connect before the barrier, so the load starts at once
            barrier.wait()
            statuses = results.setdefault(file.name, [])
            for _ in range(rounds):
                response = client.post(path, content=body, headers={"content-type": "application/json"})
                statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(file,)) for file in files]
    for thread in threads:
        thread.start()
    barrier.wait()
    print("started", flush=True)
    for thread in threads:
        thread.join()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
