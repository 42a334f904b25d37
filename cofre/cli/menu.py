"""`cofre menu`: the seed's interactive menu, driven by lines on stdin.

Every prompt reads one line, so a script (or a test) can drive it through a pipe; end of input
leaves cleanly.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cofre.cli.budget import Budget
from cofre.cli.context import Context
from cofre.cli.download import default_dest, get_to_path
from cofre.cli.exitcodes import ExitCode, describe_error
from cofre.cli.http import Clients, connect
from cofre.cli.output import display_name
from cofre.cli.progress import TransferProgress
from cofre.cli.upload import put_file

T = TypeVar("T")

MENU = "1) Back up a file  2) Recover a file  3) Delete a file  4) Exit"


class _EndOfInput(Exception):
    pass


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        raise _EndOfInput from None


def _say(text: str) -> None:
    print(text, flush=True)


def _choose(items: list[str], what: str) -> int | None:
    """Index of the item picked by number; None when the answer is empty (back to the menu)."""
    for i, item in enumerate(items, 1):
        _say(f"  {i}) {display_name(item)}")
    while True:
        answer = _ask(f"Number of the {what} (empty to go back): ")
        if not answer:
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(items):
            return int(answer) - 1
        _say(f"Invalid choice {answer!r}: enter a number from 1 to {len(items)}.")


def _run(ctx: Context, op: Callable[[Clients], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        async with connect(ctx) as clients:
            return await op(clients)

    return asyncio.run(main())


def _shown(
    verb: str, op: Callable[[Clients, TransferProgress], Coroutine[Any, Any, T]]
) -> Callable[[Clients], Coroutine[Any, Any, T]]:
    """``op`` with the progress line of one file shown while it runs."""

    async def run(clients: Clients) -> T:
        progress = TransferProgress(verb=verb)
        async with progress.running():
            return await op(clients, progress)

    return run


def run_menu(ctx: Context) -> ExitCode:
    actions = {"1": _back_up, "2": _recover, "3": _delete}
    try:
        while True:
            _say(MENU)
            choice = _ask("Choice: ")
            if choice == "4":
                return ExitCode.OK
            action = actions.get(choice)
            if action is None:
                _say(f"Invalid choice {choice!r}: enter 1, 2, 3 or 4.")
                continue
            try:
                action(ctx)
            except Exception as exc:  # report and keep the menu: nothing is lost by going on
                _say(f"cofre: error: {describe_error(exc)}")
    except _EndOfInput:
        _say("")
        return ExitCode.OK


def _back_up(ctx: Context) -> None:
    folder = _ask("Folder [.]: ") or "."
    try:
        entries = sorted(os.listdir(folder))
    except OSError as exc:
        _say(f"cofre: error: cannot list {folder}: {exc.strerror or exc}")
        return
    files = [e for e in entries if stat.S_ISREG(os.lstat(os.path.join(folder, e)).st_mode)]
    if not files:
        _say(f"No files in {folder}.")
        return
    index = _choose(files, "file to back up")
    if index is None:
        return
    name = files[index] if folder in (".", "./") else os.path.join(folder, files[index])
    path = Path(folder) / files[index]
    result = _run(
        ctx,
        _shown(
            "put",
            lambda c, p: put_file(
                c, path=path, name=name, budget=Budget(ctx.parallelism), progress=p
            ),
        ),
    )
    _say(f"Backed up {display_name(name)}  {result.summary()}")


def _names(ctx: Context) -> list[str]:
    files = _run(ctx, lambda c: c.manager.list_files())
    return sorted(f.name for f in files)


def _recover(ctx: Context) -> None:
    names = _names(ctx)
    if not names:
        _say("No files are backed up.")
        return
    index = _choose(names, "file to recover")
    if index is None:
        return
    name = names[index]
    default = default_dest(name)
    answer = _ask(f"Destination [{display_name(str(default))}]: ")
    dest = Path(answer) if answer else default
    result = _run(
        ctx,
        _shown(
            "get",
            lambda c, p: get_to_path(
                c,
                name=name,
                version=None,
                dest=dest,
                force=False,
                budget=Budget(ctx.parallelism),
                progress=p,
            ),
        ),
    )
    _say(
        f"Recovered {display_name(name)}  version {result.version} into {display_name(result.dest)}"
    )


def _delete(ctx: Context) -> None:
    names = _names(ctx)
    if not names:
        _say("No files are backed up.")
        return
    index = _choose(names, "file to delete")
    if index is None:
        return
    name = names[index]
    deleted = _run(ctx, lambda c: c.manager.delete(name))
    _say(f"Deleted {display_name(name)} (versions {', '.join(map(str, sorted(deleted)))})")
