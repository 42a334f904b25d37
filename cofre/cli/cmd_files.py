"""`cofre put`, `get`, `ls`, `rm`: moving files in and out, listing and deleting backups."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import stat
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cofre.cli.batch_download import SMALL_FILE_BYTES, get_batch, plan_batches
from cofre.cli.batch_upload import put_many
from cofre.cli.budget import Budget
from cofre.cli.context import Context
from cofre.cli.download import GetResult, default_dest, dest_under, get_to_path, get_to_stdout
from cofre.cli.exitcodes import (
    ExitCode,
    LocalFileError,
    UsageError,
    describe_error,
    exit_code_for,
)
from cofre.cli.http import connect
from cofre.cli.output import display_name, human_size, human_time, print_json, table
from cofre.cli.progress import TransferProgress
from cofre.cli.sending import PutResult
from cofre.cli.tree_put import TreeBackup, split_tags
from cofre.models import validate_name


def collect(paths: list[str], *, name: str | None) -> list[tuple[Path, str]]:
    """(file, backup name) for every regular file named or found below a named directory.

    A file is named by its path exactly as typed; files below a directory by that path joined
    with their path inside it. Symlinks and special files below directories are skipped.
    """
    if name is not None and len(paths) != 1:
        raise UsageError("--name needs exactly one PATH")
    if name is not None:
        validate_name(name)
    items: dict[str, Path] = {}
    for typed in paths:
        try:
            st = os.stat(typed)
        except OSError as exc:
            raise LocalFileError(f"cannot read {typed}: {exc.strerror or exc}") from exc
        if stat.S_ISDIR(st.st_mode):
            if name is not None:
                raise UsageError("--name works with one file, not a directory")
            for path in _walk(typed):
                items.setdefault(path, Path(path))
        elif stat.S_ISREG(st.st_mode):
            items.setdefault(name if name is not None else typed, Path(typed))
        else:
            raise LocalFileError(f"{typed} is not a regular file or directory")
    return [(path, key) for key, path in items.items()]


def _walk(top: str) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=_raise):
        dirnames.sort()
        for fname in sorted(filenames):
            full = os.path.join(dirpath, fname)
            try:
                regular = stat.S_ISREG(os.lstat(full).st_mode)
            except FileNotFoundError:  # gone since the listing: nothing to back up
                continue
            if regular:
                found.append(full[2:] if top == "." and full.startswith("./") else full)
    return found


def _raise(exc: OSError) -> None:
    raise LocalFileError(f"cannot read {exc.filename}: {exc.strerror or exc}")


def split_sources(paths: list[str]) -> tuple[list[str], list[str]]:
    """(directories, the rest) of what `put` was given, in order."""
    dirs: list[str] = []
    rest: list[str] = []
    for typed in paths:
        (dirs if os.path.isdir(typed) else rest).append(typed)
    return dirs, rest


async def run_put(args: argparse.Namespace, ctx: Context) -> ExitCode:
    dirs, files = ([], args.paths) if args.per_file else split_sources(args.paths)
    tree_options = args.parent is not None or args.force_read or args.host or args.tag
    if tree_options and not dirs:
        raise UsageError("--host, --tag, --parent and --force-read are for directories")
    if args.json and dirs and files:
        # One JSON document per command: a snapshot's and a batch of versions' differ.
        raise UsageError("--json takes files or directories, not both; put them separately")
    code = ExitCode.OK
    if files or not dirs:
        code = await _put_files(args, ctx, files)
    if dirs:
        tree_code = await _put_tree(args, ctx, dirs)
        code = code if code != ExitCode.OK else tree_code
    return code


async def _put_tree(args: argparse.Namespace, ctx: Context, dirs: list[str]) -> ExitCode:
    """Back the directories up as one snapshot and print its id and counts."""
    if args.name is not None:
        raise UsageError("--name works with one file, not a directory")
    progress = TransferProgress(verb="put", keep_finished=False)

    def warn(line: str) -> None:
        progress.line.echo(f"cofre: warning: {display_name(line)}", stream=sys.stderr)

    def report(path: str, exc: Exception) -> None:
        progress.line.echo(_error_line(path, exc), stream=sys.stderr)

    async with connect(ctx) as clients, progress.running():
        backup = TreeBackup(
            clients, budget=Budget(ctx.parallelism), progress=progress, warn=warn, on_error=report
        )
        result = await backup.run(
            dirs,
            host=args.host or socket.gethostname(),
            tags=split_tags(args.tag),
            parent_ref=args.parent,
            force_read=args.force_read,
        )
    seconds = progress.elapsed()
    c = result.counts
    snap = result.snapshot
    if args.json:
        print_json(
            {
                "snapshot_id": snap.snapshot_id,
                "short_id": snap.short_id,
                "parent": result.parent.snapshot_id if result.parent else None,
                **asdict(c),
                "files": c.files,
                "seconds": round(seconds, 3),
                "errors": [{"path": p, "error": describe_error(e)} for p, e in result.errors],
            }
        )
    else:
        parent = f" (parent {result.parent.short_id})" if result.parent else ""
        lines = [
            f"snapshot {snap.short_id} saved{parent}",
            f"files: {c.files_new} new, {c.files_changed} changed, {c.files_unchanged} unchanged;"
            f" {c.dirs} dirs, {c.symlinks} symlinks"
            + (f"; {c.skipped} skipped" if c.skipped else "")
            + (f"; {c.failed} failed" if c.failed else ""),
            f"read {human_size(c.bytes_read)} of {human_size(c.bytes)},"
            f" sent {human_size(c.bytes_sent)} in {seconds:.1f} s",
        ]
        print("\n".join(lines), flush=True)
    if result.errors:
        return exit_code_for(result.errors[0][1])
    return ExitCode.OK


async def _put_files(args: argparse.Namespace, ctx: Context, paths: list[str]) -> ExitCode:
    items = collect(paths, name=args.name)
    if not items:
        print("cofre: nothing to back up (no regular files)", file=sys.stderr)
        return ExitCode.OK
    progress = TransferProgress(verb="put")
    done: list[PutResult] = []
    errors: dict[str, Exception] = {}

    def report(name: str, result: PutResult | Exception) -> None:
        if isinstance(result, PutResult):
            done.append(result)
            if not args.json:
                progress.line.echo(f"{display_name(name)}  {result.summary()}")
        else:
            errors[name] = result
            progress.line.echo(_error_line(name, result), stream=sys.stderr)

    async with connect(ctx) as clients, progress.running():
        await put_many(
            clients, items, budget=Budget(ctx.parallelism), progress=progress, on_result=report
        )
    order = {name: i for i, (_, name) in enumerate(items)}
    if args.json:
        results = [asdict(r) for r in sorted(done, key=lambda r: order[r.name])]
        print_json(_summary(progress, "bytes_sent", results, errors, order))
    elif len(items) > 1:
        sent = human_size(progress.bytes_moved)
        print(f"backed up {_figures(progress, extra=f' ({sent} sent)')}", flush=True)
    first = min(errors, key=order.__getitem__, default=None)
    return ExitCode.OK if first is None else exit_code_for(errors[first])


def _error_line(name: str, exc: BaseException) -> str:
    return f"cofre: error: {display_name(name)}: {describe_error(exc)}"


def _figures(progress: TransferProgress, *, where: str = "", extra: str = "") -> str:
    """``N of M files<where>, SIZE<extra> in S s (RATE/s)[, K failed]``: the closing line's
    figures."""
    seconds = progress.elapsed()
    rate = progress.bytes_done / seconds if seconds > 0 else 0.0
    ok = progress.files_done - progress.failures
    text = (
        f"{ok} of {progress.files_total} files{where}, {human_size(progress.bytes_ok)}{extra}"
        f" in {seconds:.1f} s ({human_size(rate)}/s)"
    )
    if progress.failures:
        text += f", {progress.failures} failed"
    return text


def _summary(
    progress: TransferProgress,
    moved_as: str | None,
    results: list[dict[str, Any]],
    errors: dict[str, Exception],
    order: dict[str, int],
) -> dict[str, Any]:
    """The `--json` document: the figures, each file's result, each failure's error."""
    failed = sorted(errors, key=order.__getitem__)
    return {
        **progress.summary(moved_as=moved_as),
        "results": results,
        "errors": [{"name": n, "error": describe_error(errors[n])} for n in failed],
    }


async def run_get(args: argparse.Namespace, ctx: Context) -> ExitCode:
    budget = Budget(ctx.parallelism)
    if args.json and args.output == "-":
        raise UsageError("--json prints to stdout, where -o - writes the file; use one of them")
    if args.prefix is not None:
        if args.name is not None or args.version is not None:
            raise UsageError("--prefix restores the latest versions; give no NAME or --version")
        return await _get_prefix(args, ctx, budget)
    if args.name is None:
        raise UsageError("give a NAME to restore (or --prefix)")
    progress = TransferProgress(verb="get")
    async with connect(ctx) as clients, progress.running():
        if args.output == "-":
            await get_to_stdout(
                clients, name=args.name, version=args.version, budget=budget, progress=progress
            )
            return ExitCode.OK
        dest = Path(args.output) if args.output is not None else default_dest(args.name)
        result = await get_to_path(
            clients,
            name=args.name,
            version=args.version,
            dest=dest,
            force=args.force,
            budget=budget,
            progress=progress,
            make_parents=True,
        )
        progress.finished(result.name, size=result.size)
    if args.json:
        print_json(_summary(progress, None, [asdict(result)], {}, {}))
        return ExitCode.OK
    print(
        f"{display_name(result.name)}  version {result.version}  {human_size(result.size)}"
        f"  -> {display_name(result.dest)}",
        flush=True,
    )
    return ExitCode.OK


async def _get_prefix(args: argparse.Namespace, ctx: Context, budget: Budget) -> ExitCode:
    root = Path(args.output if args.output not in (None, "-") else ".")
    progress = TransferProgress(verb="get")
    restored: list[GetResult] = []
    failures: dict[str, Exception] = {}

    def report(name: str, result: GetResult | Exception) -> None:
        if isinstance(result, Exception):
            failures[name] = result
            progress.finished(name, error=True)
        else:
            restored.append(result)
            progress.finished(name, size=result.size)

    async with connect(ctx) as clients:
        files = [f for f in await clients.manager.list_files() if f.name.startswith(args.prefix)]
        if not files:
            raise UsageError(f"no backed-up name starts with {args.prefix!r}")
        for f in files:
            progress.expect(f.name, f.size)

        async def one(name: str) -> None:
            async with budget.files:
                try:
                    result: GetResult | Exception = await get_to_path(
                        clients,
                        name=name,
                        version=None,
                        dest=dest_under(root, name),
                        force=args.force,
                        budget=budget,
                        progress=progress,
                        make_parents=True,
                    )
                except Exception as exc:
                    result = exc
            report(name, result)

        batches = asyncio.Semaphore(ctx.parallelism)

        async def batch(group: list[tuple[str, int]]) -> None:
            async with batches:
                for name, size in group:
                    progress.started(name, size)
                await get_batch(
                    clients, group, root=root, force=args.force, budget=budget, on_result=report
                )

        names = [f.name for f in files]
        # Small files come in batches (one manifest request, one read per node); big ones stream.
        small = [(f.name, f.size) for f in files if f.size <= SMALL_FILE_BYTES]
        large = [f.name for f in files if f.size > SMALL_FILE_BYTES]
        async with progress.running():
            await asyncio.gather(*(batch(g) for g in plan_batches(small)), *(one(n) for n in large))
    order = {name: i for i, name in enumerate(names)}
    code = ExitCode.OK
    for name in names:
        if name in failures:
            result = failures[name]
            print(_error_line(name, result), file=sys.stderr)
            if code == ExitCode.OK:
                code = exit_code_for(result)
    if args.json:
        results = [asdict(r) for r in sorted(restored, key=lambda r: order[r.name])]
        print_json(_summary(progress, None, results, failures, order))
    else:
        print(f"restored {_figures(progress, where=f' into {root}')}", flush=True)
    return code


async def run_ls(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        files = await clients.manager.list_files(versions=args.versions)
    files.sort(key=lambda f: (f.name, f.version))
    if args.json:
        print_json(files)
        return ExitCode.OK
    if not files:
        print("no backups", file=sys.stderr)
        return ExitCode.OK
    rows = [
        [
            display_name(f.name),
            str(f.version),
            human_size(f.size),
            human_time(f.created),
        ]
        for f in files
    ]
    print(table(["NAME", "VERSION", "SIZE", "CREATED"], rows, right={1, 2}), flush=True)
    return ExitCode.OK


async def run_rm(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        deleted = await clients.manager.delete(args.name, version=args.version)
    if args.json:
        print_json({"name": args.name, "deleted": deleted})
        return ExitCode.OK
    word = "version" if len(deleted) == 1 else "versions"
    listed = ", ".join(str(v) for v in sorted(deleted))
    print(f"deleted {display_name(args.name)} {word} {listed}", flush=True)
    return ExitCode.OK
