"""A CoinGecko-compatible server for any number of synthetic coins, on 127.0.0.1 (benchmarks only).

`GET /api/v3/coins/{id}/market_chart/range?vs_currency=usd&from=S&to=S` answers hourly points of a
deterministic random walk per coin id (the same hour always has the same price), up to "now"
minus the hours written in the file given by --lag-file (re-read on every request), so that a
benchmark can serve a backfill first and the next hour later. Prints its port on stdout.

usage: python3 bench/synthetic_coingecko.py --lag-file FILE
"""

import argparse
import http.server
import json
import math
import random
import re
import sys
import time
import urllib.parse
import zlib

HOUR = 3600
ROUTE = re.compile(r"^/api/v3/coins/([a-z0-9._-]+)/market_chart/range$")


def price(coin: str, hour: int) -> float:
    """A random walk anchored every 256 hours, so any hour is computed in O(256)."""
    seed = zlib.crc32(coin.encode())
    anchor = hour - hour % 256
    rng = random.Random(seed * 1_000_003 + anchor)
    level = 10 + (seed % 5000) + 50 * math.sin(anchor / 900 + seed)
    walk = 0.0
    for _ in range(hour - anchor + 1):
        walk += rng.gauss(0, 0.004)
    return level * math.exp(walk)


class Handler(http.server.BaseHTTPRequestHandler):
    lag_file = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/api/v3/ping":
            return self.answer(200, {"gecko_says": "(V3) To the Moon!"})
        match = ROUTE.match(url.path)
        if not match:
            return self.answer(404, {"error": "not found"})
        query = urllib.parse.parse_qs(url.query)
        try:
            start, end = int(float(query["from"][0])), int(float(query["to"][0]))
        except (KeyError, ValueError):
            return self.answer(422, {"error": "from and to are needed"})
        with open(self.lag_file) as f:
            lag_hours = int(f.read().strip() or 0)
        newest = (int(time.time()) // HOUR - lag_hours) * HOUR
        coin = match.group(1)
        first = -(-start // HOUR)
        hours = range(first, min(end, newest) // HOUR + 1)
        points = [(h * HOUR * 1000 + 7_000, price(coin, h)) for h in hours]
        self.answer(200, {
            "prices": [[t, p] for t, p in points],
            "market_caps": [[t, p * 1.9e7] for t, p in points],
            "total_volumes": [[t, p * 3.1e5 * (1.5 + math.sin(t / 3.6e6))] for t, p in points],
        })

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lag-file", required=True)
    args = parser.parse_args()
    Handler.lag_file = args.lag_file
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
