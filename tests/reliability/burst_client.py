"""Shoppers in their own process: fire every draw at once, report what came back.

Reads ``{"url": ..., "draws": [[token, key, count], ...]}`` on stdin and prints one
JSON list of ``[status, Retry-After or null, body]``, in order. The burst test runs it
as a child so that 1,000 clients' work does not share the server's event loop (real
shoppers do not), with no connection limit: every draw is in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp


async def _draw(http: aiohttp.ClientSession, url: str, token: str, key: str,
                count: int) -> list[Any]:
    async with http.post(url, json={"count": count}, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": key}) as resp:
        return [resp.status, resp.headers.get("Retry-After"), await resp.json()]


async def main() -> None:
    job = json.loads(sys.stdin.read())
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout) as http:
        results = await asyncio.gather(*[_draw(http, job["url"], t, k, n)
                                         for t, k, n in job["draws"]])
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
