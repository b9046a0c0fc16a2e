"""The `candlegraph` command: up, serve, worker, flow, simulate, feed, backfill, import and
schema.

Settings come from `CANDLEGRAPH_*` variables, then from flags; see `server.settings`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from server.logs import configure_logging
from server.settings import Settings, SettingsError

log = logging.getLogger("candlegraph")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="candlegraph",
        description="Real-time candles, indicators and backtests over GraphQL.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--data-dir", type=Path, help="where all state lives (default ./data)")
        p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
        return p

    def nats_url(p: argparse.ArgumentParser) -> None:
        p.add_argument("--nats-url", help="NATS server URL (default nats://127.0.0.1:4222)")

    def feed_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rate", type=float, dest="sim_rate", help="trades per second")
        p.add_argument("--seed", type=int, dest="sim_seed", help="random seed")
        p.add_argument(
            "--symbols", dest="sim_symbols", type=lambda s: tuple(s.split(",")),
            help="comma-separated BASE-QUOTE symbols",
        )

    def exchange_flags(p: argparse.ArgumentParser, symbols: bool = True) -> None:
        p.add_argument("--exchange", help="a ccxt exchange id, e.g. binance")
        if symbols:
            p.add_argument(
                "--symbols", dest="exchange_symbols", type=lambda s: tuple(s.split(",")),
                help="comma-separated markets, e.g. BTC/USDT,ETH/USDT",
            )

    up = command(
        "up", "Start NATS, the dataflow, the simulator (or an exchange feed), a backtest worker"
        " and the GraphQL server."
    )
    up.add_argument("--port", type=int, help="GraphQL HTTP port (default 8000)")
    up.add_argument("--nats-port", type=int, help="NATS port (default: a free one)")
    feed_flags(up)
    exchange_flags(up, symbols=False)
    up.add_argument(
        "--no-feed", action="store_false", dest="up_feed", default=None,
        help="start no trade source: the flow takes only what is published on NATS (a replay)",
    )

    serve = command("serve", "Run the GraphQL server only.")
    nats_url(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    serve.add_argument(
        "--workers", type=int, dest="backtest_workers",
        help="backtest worker processes to run in this server (default 0: none)",
    )

    worker = command(
        "worker", "Run backtest jobs from the queue (on any machine with NATS and the store)."
    )
    nats_url(worker)
    worker.add_argument(
        "--concurrency", type=int, dest="worker_concurrency",
        help="backtests to run at once, each in its own process (default 2)",
    )

    flow = command("flow", "Run the candle dataflow only.")
    nats_url(flow)
    flow.add_argument(
        "--timeframes", type=lambda s: tuple(s.split(",")), help="e.g. 1s,1m,5m"
    )
    flow.add_argument(
        "--workers", type=int, dest="flow_workers",
        help="worker processes to start on this machine (default 1)",
    )
    flow.add_argument(
        "--addresses", dest="flow_addresses", type=lambda s: tuple(s.split(",")),
        help="for a cluster across machines: host:port of every process, comma-separated",
    )
    flow.add_argument(
        "--process-id", type=int, dest="flow_process_id",
        help="with --addresses: this process's index in that list",
    )

    simulate = command("simulate", "Run the trade simulator feed only.")
    nats_url(simulate)
    feed_flags(simulate)

    feed = command("feed", "Publish an exchange's live trades on NATS (ccxt).")
    nats_url(feed)
    exchange_flags(feed)
    feed.add_argument("--metrics-port", type=int, dest="feed_metrics_port",
                      help="port of this feed's /metrics (default 9200; 0: none)")

    backfill = command("backfill", "Fetch an exchange's candle history into the store (ccxt).")
    exchange_flags(backfill)
    backfill.add_argument("--timeframe", dest="backfill_timeframes", default="1m",
                          help="comma-separated timeframes to fetch, e.g. 1m,1h,1d (default 1m)")
    backfill.add_argument("--since", dest="backfill_since",
                          help="first day or time, UTC: 2024-01-01 or 2024-01-01T12:00"
                          " (default: after the last stored candle)")
    backfill.add_argument("--until", dest="backfill_until",
                          help="end (excluded), UTC (default: now)")
    backfill.add_argument("--days", type=int, dest="backfill_days",
                          help="instead of --since: this many days before --until")
    backfill.add_argument("--repair", action="store_true", dest="backfill_repair",
                          help="fetch every missing candle of the range, holes included")

    imports = command(
        "import", "Import trade or candle files into the store, or replay trades on NATS."
    )
    nats_url(imports)
    imports.add_argument("import_paths", nargs="+", metavar="PATH",
                         help="files or globs: plain, .gz or .zip CSV, or Parquet")
    imports.add_argument("--exchange", dest="import_exchange", metavar="EXCHANGE", required=True,
                         help="exchange the files come from, e.g. binance")
    imports.add_argument("--symbol", dest="import_symbol", metavar="SYMBOL", required=True,
                         help="market as BASE-QUOTE, e.g. BTC-USDT")
    imports.add_argument("--format", dest="import_format", metavar="FORMAT",
                         help="binance-trades, binance-aggtrades, binance-klines, tardis-trades,"
                              " trades or candles (default: told from the file)")
    imports.add_argument("--columns", dest="import_columns", metavar="COLUMNS", default="",
                         help="column names of a generic file, e.g. ts=Time,price=Price,size=Qty")
    imports.add_argument("--timeframe", dest="import_timeframe", metavar="TIMEFRAME",
                         help="timeframe of a generic candle file, e.g. 1m")
    imports.add_argument("--replay", dest="import_replay", action="store_true",
                         help="publish the trades on NATS instead of storing candles")
    imports.add_argument("--speed", dest="import_speed", metavar="SPEED", default="max",
                         help="with --replay: times the original pace, or max (default)")

    sub.add_parser("schema", help="Print the GraphQL SDL.", description="Print the GraphQL SDL.")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items()
             if k != "command" and not k.startswith(("backfill_", "import_"))}
    if args.command == "up" and flags.get("exchange") and flags.get("up_feed") is False:
        print("candlegraph: --no-feed starts no trade source; --exchange names one",
              file=sys.stderr)
        return 2
    if args.command == "up" and flags.get("exchange"):
        # `up --exchange X --symbols A/B`: the symbols are the exchange's, not the simulator's.
        flags["exchange_symbols"] = flags.pop("sim_symbols", None)
    try:
        settings = Settings.from_env(os.environ if environ is None else environ)
        settings = settings.with_overrides(**flags)
    except (SettingsError, TypeError) as error:
        print(f"candlegraph: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    match args.command:
        case "up":
            from server.up import run_up

            return run_up(settings)
        case "serve":
            return _serve(settings)
        case "worker":
            from server.backtest_worker import run_worker

            return run_worker(settings)
        case "flow":
            return _flow(settings)
        case "simulate":
            return _simulate(settings)
        case "feed":
            from server.feed_process import run_feed

            return run_feed(settings)
        case "backfill":
            from server.backfill_command import run_backfill

            return run_backfill(settings, args)
        case "import":
            from server.importer import ImportRequest, run_import

            request = ImportRequest(
                tuple(args.import_paths), args.import_exchange, args.import_symbol,
                args.import_format, args.import_columns, args.import_timeframe,
                args.import_replay, args.import_speed,
            )
            return run_import(settings, request)
        case "schema":
            from graphql_schema.schema import build_schema

            print(build_schema().as_str())
            return 0
    return 2


def _serve(settings: Settings) -> int:
    import uvicorn

    from server.app import create_app

    app = create_app(settings)
    # The ~150k objects of the imported libraries live as long as the process: keep them out
    # of the collector's full passes (~70 ms each here), which would stall every live stream.
    gc.freeze()
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level="warning", ws_ping_interval=20,
        ws_max_size=settings.max_request_bytes,
        log_config=None,  # uvicorn's own lines go through our (JSON) handler too
    )
    return 0


def _flow(settings: Settings) -> int:
    from server.flow_process import run_flow

    try:
        return run_flow(settings)
    except SettingsError as error:
        print(f"candlegraph flow: {error}", file=sys.stderr)
        return 2


def _simulate(settings: Settings) -> int:
    from flows.publisher import run_simulator
    from flows.simulator import TradeSimulator

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        simulator = TradeSimulator(settings.sim_symbols, seed=settings.sim_seed)
        await run_simulator(settings.nats_url, simulator, rate=settings.sim_rate, stop=stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
