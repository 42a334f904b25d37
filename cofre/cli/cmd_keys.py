"""`cofre keys add|ls|rm`: the keys clients use instead of the cluster token (admin only).

A key carries one role: read (list, restore), backup (and add backups; never delete), admin
(everything). `keys add` prints the key once: the manager keeps only a hash of it.
"""

from __future__ import annotations

import argparse
import sys

from cofre.cli.context import Context
from cofre.cli.exitcodes import ExitCode
from cofre.cli.http import connect
from cofre.cli.output import human_time, print_json, table
from cofre.protocol.access import Role


async def run_keys_add(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        made = await clients.manager.create_key(args.name, Role(args.role))
    if args.json:
        print_json(made)
        return ExitCode.OK
    print(made.key, flush=True)
    print(
        f"key {made.name!r} made with role {made.role.value}: it is shown only now; "
        "use it as COFRE_KEY or --key",
        file=sys.stderr,
    )
    return ExitCode.OK


async def run_keys_ls(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        keys = await clients.manager.list_keys()
    if args.json:
        print_json(keys)
        return ExitCode.OK
    rows = [
        [
            k.name,
            k.role.value,
            human_time(k.created),
            "never" if k.last_used is None else human_time(k.last_used),
        ]
        for k in keys
    ]
    print(table(["NAME", "ROLE", "CREATED", "LAST_USED"], rows))
    return ExitCode.OK


async def run_keys_rm(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        await clients.manager.delete_key(args.name)
    if args.json:
        print_json({"deleted": args.name})
    else:
        print(f"key {args.name!r} revoked", flush=True)
    return ExitCode.OK
