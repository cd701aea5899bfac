"""`kafkapy` command line.

`broker` lives here. Other subcommands are registered in SUBCOMMANDS and live
in their own modules, imported only when chosen; such a module defines

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int

Exit status 2 means bad usage or an invalid config value.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from kafkapy import __version__

EXIT_USAGE = 2


@dataclass(slots=True, frozen=True)
class SubcommandSpec:
    """A subcommand implemented by `module` (with add_arguments and run)."""

    name: str
    module: str
    help: str


SUBCOMMANDS: tuple[SubcommandSpec, ...] = (
    SubcommandSpec("broker", "kafkapy.cli", "run a broker"),
    SubcommandSpec("topics", "kafkapy.cli_topics", "create, list, describe, alter and delete topics"),
    SubcommandSpec("produce", "kafkapy.cli_produce", "produce records from stdin"),
    SubcommandSpec("consume", "kafkapy.cli_consume", "consume records to stdout"),
    SubcommandSpec("groups", "kafkapy.cli_groups", "list, describe and reset consumer groups"),
    SubcommandSpec("cluster", "kafkapy.cli_cluster", "cluster status, rebalance plans and leader elections"),
    SubcommandSpec("users", "kafkapy.cli_users", "add, alter, delete and list SCRAM users"),
    SubcommandSpec("quotas", "kafkapy.cli_quotas", "set, delete and describe client quotas"),
    SubcommandSpec("acls", "kafkapy.cli_acls", "add, remove and list ACLs (kafka-acls' options)"),
    SubcommandSpec("top", "kafkapy.cli_top", "a live terminal dashboard of brokers' metrics endpoints"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `kafkapy broker`."""
    parser.add_argument("--listen", metavar="HOST:PORT", help="listen address (listeners); default 127.0.0.1:9092")
    parser.add_argument("--advertise", metavar="HOST:PORT", help="address given to clients (advertised.listeners)")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (log.dirs); default ./data")
    parser.add_argument("--broker-id", metavar="N", help="broker id (node.id); default 0")
    parser.add_argument(
        "--metadata", metavar="etcd://HOST:PORT[,...]", help="keep cluster metadata in etcd (metadata.connect)"
    )
    parser.add_argument("--cluster-id", metavar="ID", help="cluster id (cluster.id); a cluster's brokers share it")
    parser.add_argument("--rack", metavar="RACK", help="this broker's rack (broker.rack)")
    parser.add_argument("--config", metavar="FILE", help="a Kafka server.properties file")
    parser.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve /metrics, /healthz and /readyz over HTTP here (kafkapy.metrics.listen); default: off",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key (repeatable; applied after the file and the flags above)",
    )
    add_logging_arguments(parser)


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="log level (default: $KAFKAPY_LOG_LEVEL or info)",
    )
    parser.add_argument("--log-format", choices=("console", "json"), default="console", help="log line format")


def overrides_from_args(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Config pairs from the flags, in precedence order (later wins)."""
    pairs: list[tuple[str, str]] = []
    if args.listen:
        pairs.append(("listeners", args.listen))
    if args.advertise:
        pairs.append(("advertised.listeners", args.advertise))
    if args.data_dir:
        pairs.append(("log.dirs", args.data_dir))
    if args.broker_id is not None:
        pairs.append(("node.id", args.broker_id))
    if getattr(args, "metadata", None):
        pairs.append(("metadata.connect", args.metadata))
    if getattr(args, "cluster_id", None):
        pairs.append(("cluster.id", args.cluster_id))
    if getattr(args, "rack", None):
        pairs.append(("broker.rack", args.rack))
    if getattr(args, "metrics_listen", None):
        pairs.append(("kafkapy.metrics.listen", args.metrics_listen))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), value))
    return pairs


def run(args: argparse.Namespace) -> int:
    """`kafkapy broker`."""
    # structlog imports rich, where installed, for console tracebacks the broker never renders (its
    # log lines are plain key=value or JSON): ~70 ms of start-up. import-linter brings rich into the
    # test environment.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    from kafkapy.config import BrokerConfig, ConfigError
    from kafkapy.logging import configure_logging

    try:
        configure_logging(args.log_level, args.log_format)
    except ValueError as exc:
        print(f"kafkapy broker: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = BrokerConfig.load(args.config, overrides_from_args(args))
    except (ConfigError, ValueError) as exc:
        print(f"kafkapy broker: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from kafkapy.server.broker import run_broker
    from kafkapy.server.dispatch import build_handler

    return run_broker(config, build_handler)


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """Top-level parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="kafkapy", description="Apache Kafka, re-implemented in Python.")
    parser.add_argument("--version", action="version", version=f"kafkapy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for spec in SUBCOMMANDS:
        child = sub.add_parser(spec.name, help=spec.help, description=spec.help)
        if spec.name == chosen:
            module = sys.modules[__name__] if spec.module == __name__ else importlib.import_module(spec.module)
            module.add_arguments(child)
            child.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(chosen)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
