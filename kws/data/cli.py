"""`kws data` (what data folders hold) and `kws data get` (download a data set into a folder).

A group whose callback runs when no subcommand is given, so `kws data --data DIR` keeps its
options and output while `get` sits next to it. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from kws.errors import KwsError

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

data_app = typer.Typer(help="Show what data folders hold; `get` downloads a data set.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
KeywordsOpt = Annotated[Optional[str], typer.Option(help="Comma-separated keywords (default: the ten).")]
ReadOpt = Annotated[bool, typer.Option("--read/--no-read", help="Read every clip to find bad files.")]
SPLIT_NAMES = ("train", "validation", "test")


def _warn(line: str) -> None:
    err.print(f"[yellow]skipped[/] {line}", highlight=False, markup=True, soft_wrap=True)


@data_app.callback(invoke_without_command=True)
def data(
    ctx: typer.Context,
    data_dirs: Annotated[Optional[list[Path]], typer.Option(
        "--data", help="Speech Commands style folder; repeat to combine (default: the shared "
                       "data's folders).")] = None,
    keywords: KeywordsOpt = None,
    read: ReadOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Show what data folders hold: clips per label and split, speakers, noise, bad files."""
    if ctx.invoked_subcommand is None:
        show_summary(data_dirs or [], keywords, read, json_out)


def show_summary(data_dirs: list[Path], keywords: Optional[str], read: bool, json_out: bool,
                 extra: Optional[dict] = None) -> None:
    """Index (and with `read`, read) the folders and print the table, or one JSON object with
    `extra` merged in (so `get --json` still prints a single object)."""
    import time

    from kws.config import DataConfig
    from kws.data.dataset import default_data_roots, index_folders, load_audio

    started = time.perf_counter()
    data_dirs, _ = default_data_roots(data_dirs)
    if not data_dirs:
        raise KwsError("no data folder given and no shared data found (use --data DIR)")
    config = DataConfig(**({"keywords": tuple(k.strip() for k in keywords.split(","))} if keywords else {}))
    dataset = index_folders(data_dirs, config)
    for note in dataset.notes:
        err.print(f"[cyan]note[/] {note}")
    if read:
        loaded = load_audio(dataset.clips, config, report=_warn)
        dataset.problems = loaded.problems
        dataset.clips = loaded.clips
    summary = dataset.summary()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if json_out:
        sys.stdout.write(json.dumps({**summary, **(extra or {})}) + "\n")
        return
    table = Table(title=f"{', '.join(str(d) for d in data_dirs)}")
    table.add_column("label")
    for split in SPLIT_NAMES:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for label, per in summary["counts"].items():
        table.add_row(label, *(str(v) for v in per.values()), str(sum(per.values())))
    split_totals = [sum(per[s] for per in summary["counts"].values()) for s in SPLIT_NAMES]
    table.add_row("total", *(str(v) for v in split_totals), str(sum(split_totals)), style="bold")
    out.print(table)
    sp = summary["speakers"]
    out.print(f"{summary['clips']} clips in {len(summary['labels'])} labels; speakers "
              f"train {sp['train']} / validation {sp['validation']} / test {sp['test']}; "
              f"{summary['noise_files']} background-noise files; "
              f"{len(summary['problems'])} unreadable files skipped ({summary['seconds']:.1f} s)")


@data_app.command("get")
def get(
    dataset: Annotated[str, typer.Argument(help="Data set to fetch: speech-commands.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to extract into (the partial download waits in DIR/.kws-download).")],
    version: Annotated[str, typer.Option(help="Speech Commands release: v0.02 | v0.01.")] = "v0.02",
    url: Annotated[Optional[str], typer.Option(help="Fetch from this URL instead (a mirror); needs --sha256 unless it is the official one.")] = None,
    sha256: Annotated[Optional[str], typer.Option(help="Expected SHA-256 of the archive (hex).")] = None,
    keywords: KeywordsOpt = None,
    read: ReadOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Download (resumably), verify the SHA-256 and safely extract a data set, then show it."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    from kws.data.download import get as fetch_and_extract
    from kws.data.download import resolve

    archive = resolve(dataset, version, url, sha256)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=err,
                  transient=True) as progress:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: Optional[int]) -> None:
            if stage == "extract":  # a count of members, not bytes: a line, not a bar
                if not done:
                    progress.console.print(f"extracting {total:,} members")
                return
            if stage not in tasks:
                tasks[stage] = progress.add_task({"download": "downloading",
                                                  "verify": "checking SHA-256"}[stage], total=total)
            progress.update(tasks[stage], completed=done, total=total)

        report = fetch_and_extract(archive, out_dir, progress=tick)
    if report.already_there:
        err.print(f"already there: {out_dir} holds {archive.url} (sha256 {archive.sha256[:12]}...)",
                  highlight=False)
    else:
        resumed = f", resumed at {report.resumed_from:,}" if report.resumed_from else ""
        err.print(f"downloaded {archive.url} ({report.archive_bytes:,} bytes{resumed}), SHA-256 "
                  f"ok, extracted {len(report.entries)} entries into {out_dir}; removed the "
                  f"archive {report.removed_archive} (no longer needed)", highlight=False)
    show_summary([out_dir], keywords, read, json_out, extra={"get": report.as_dict()})
