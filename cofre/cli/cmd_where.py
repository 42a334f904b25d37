"""`cofre where NAME`: every copy of a version's chunks, its state now and why it is there."""

from __future__ import annotations

import argparse

from cofre.cli.context import Context
from cofre.cli.exitcodes import ExitCode
from cofre.cli.http import connect
from cofre.cli.output import display_name, human_size, human_time, print_json
from cofre.protocol.manager_api import ChunkWhere, WhereReport


async def run_where(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        report = await clients.manager.where(args.name, version=args.version)
    if args.json:
        print_json(report)
    else:
        print(where_text(report), flush=True)
    healthy = all(c.status == "ok" for c in [report.manifest, *report.chunks])
    return ExitCode.OK if healthy else ExitCode.FAILURE


def where_text(report: WhereReport) -> str:
    """One line per chunk and per copy; each distinct reason is printed once, at the end."""
    chunks = report.chunks
    reasons: dict[str, int] = {}
    lines = [
        f"{display_name(report.name)} version {report.version}: "
        f"{human_size(report.size)} in {len(chunks)} "
        f"chunk{'' if len(chunks) == 1 else 's'}, "
        f"{report.replication_factor} copies each"
    ]
    for i, chunk in enumerate(chunks, 1):
        lines += _chunk_lines(f"chunk {i}/{len(chunks)}", chunk, reasons)
    lines += _chunk_lines("manifest", report.manifest, reasons)
    if reasons:
        lines.append("why:")
        lines += [f"  [{n}] {why}" for why, n in reasons.items()]
    return "\n".join(lines)


def _chunk_lines(label: str, chunk: ChunkWhere, reasons: dict[str, int]) -> list[str]:
    lines = [f"{label} {chunk.hash[:16]}  {human_size(chunk.length)}  {chunk.status}"]
    for copy in chunk.copies:
        n = reasons.setdefault(copy.why, len(reasons) + 1)
        lines.append(f"  {copy.node_id}  {copy.state}  since {human_time(copy.since)}  [{n}]")
    if not chunk.copies:
        lines.append("  no copy recorded")
    return lines
