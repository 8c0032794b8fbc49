#!/usr/bin/python3
"""t/py/ws_client.py: Python's websockets (Debian's python3-websockets) as
an outside WebSocket client for the 7xx tests. Usage: ws_client.py URL
Prints one line per check: the echoes of a text, a binary, a large and a
fragmented message, a pong, and the close code."""
import asyncio
import sys

import websockets


async def main(url):
    async with websockets.connect(url, max_size=2 ** 22) as ws:
        await ws.send("h\u00e9llo \u2713")
        print("text", await ws.recv())
        await ws.send(b"\x00\x01\xff")
        got = await ws.recv()
        print("binary", type(got).__name__, got.hex())
        await ws.send("x" * 200000)
        print("large", len(await ws.recv()))
        await ws.send(iter(["frag", "ment", "\u00e9d"]))
        print("fragmented", await ws.recv())
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        print("pong")
        await ws.close()
        print("closed", ws.close_code)


asyncio.run(asyncio.wait_for(main(sys.argv[1]), 30))
