"""Print live ticks for a few symbols from tickstream's Redis.

    python examples/redis_consumer.py --url redis://127.0.0.1:6390/0 RELIANCE INFY
    python examples/redis_consumer.py --all            # every instrument (pub/sub)
    python examples/redis_consumer.py --group analytics --name worker-1 RELIANCE
                                                       # at-least-once consumer-group member

Run `tickstream run` (or `tickstream process` with REDIS_URL set) to have ticks flowing.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from tickstream.calendar import ist_datetime
from tickstream.consumer import create_redis_consumer
from tickstream.model import Tick


def show(tick: Tick) -> None:
    at = ist_datetime(tick.ts_exchange).strftime("%H:%M:%S.%f")[:-3]
    print(f"{at} IST  {tick.symbol:<20} ltp={tick.ltp}  volume={tick.volume}")


async def main(args: argparse.Namespace) -> None:
    consumer = create_redis_consumer(
        args.url, group=args.group, consumer_name=args.name, stream_prefix=args.stream_prefix
    )
    await consumer.connect()
    consumer.add_message_handler(show)
    try:
        if args.all:
            await consumer.subscribe_to_all_symbols()
        else:
            for symbol in args.symbols:
                latest = await consumer.get_latest_tick(symbol)
                info = await consumer.get_stream_info(symbol)
                print(f"{symbol}: {info['length']} entries, latest ltp {latest and latest.ltp}")
            await consumer.subscribe_to_multiple_symbols(args.symbols)
        await consumer.run(args.seconds)
    finally:
        await consumer.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("symbols", nargs="*", default=["RELIANCE"])
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--all", action="store_true", help="every symbol, via pub/sub")
    parser.add_argument("--group", default=None, help="consumer group (at-least-once)")
    parser.add_argument("--name", default=None, help="consumer name inside the group")
    parser.add_argument("--stream-prefix", default="market_data_stream:", help="stream names")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    asyncio.run(main(parser.parse_args()))
