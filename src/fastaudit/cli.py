"""The `fastaudit` command line: parse options, call one library function, render."""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from fastaudit.errors import FastauditError
from fastaudit.names import printable

# Each command imports what it uses: `scan` of an unchanged mirror should not pay for loading the
# ELF extension and numpy, which only its workers need.

# Exit codes of `show`, documented in the README.
EXIT_CONSISTENT = 0
EXIT_OVER_PROMISES = 1
EXIT_USAGE_OR_UNREADABLE = 2


_Command = TypeVar("_Command", bound=Callable[..., Any])


def say_error(error: FastauditError) -> None:
    """The one-line message of a deliberate error, its names escaped."""
    click.echo(f"fastaudit: {printable(str(error))}", err=True)


def one_line_errors(command: _Command) -> _Command:
    """Every command's error handler: a FastauditError is its one-line message and exit 2 (its
    exit_code); anything else is a bug, and shows its traceback."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FastauditError as e:
            say_error(e)
            sys.exit(e.exit_code)
    return run  # type: ignore[return-value]


def echo(*lines: str) -> None:
    """Lines for a person, each escaped (see fastaudit.names): a newline inside a name stays
    inside its line."""
    for line in lines:
        click.echo(printable(line))


@click.group()
@click.version_option(package_name="fastaudit")
def main() -> None:
    """Audit manylinux/musllinux wheels."""


@main.command()
# plain strings: a folder or a FIFO among the wheels is that wheel's error, not a usage error for all
@click.argument("wheels", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per wheel, one per line.")
@click.option("--disable-isa-ext-check", is_flag=True,
              help="Do not let x86-64 ISA levels (v2, v3, v4) lower the verdict.")
@click.option("--verify-record", is_flag=True,
              help="Also check every member against its RECORD hash (reads every member).")
@one_line_errors
def show(wheels: tuple[str, ...], as_json: bool, disable_isa_ext_check: bool, verify_record: bool) -> None:
    """The platform tag each WHEEL truly satisfies, and whether its file name over-promises.

    Exit 0: consistent with its declared tag; 1: over-promises, or satisfies no manylinux/musllinux
    tag; 2: usage error or unreadable input.
    """
    from fastaudit.report.show import render_text
    from fastaudit.results import error_json, to_json
    from fastaudit.scan import audit_path

    exit_code = EXIT_CONSISTENT
    for path in wheels:
        try:
            report, _ = audit_path(path, check_isa=not disable_isa_ext_check, verify_record=verify_record)
        except FastauditError as e:
            say_error(e)
            if as_json:
                click.echo(json.dumps(error_json(path, e)))
            exit_code = max(exit_code, EXIT_USAGE_OR_UNREADABLE)
            continue
        if as_json:
            click.echo(json.dumps(to_json(report), sort_keys=False))
        else:
            click.echo(render_text(report))  # escaped by the renderer
        if report.over_promises or report.is_linux_only:
            exit_code = max(exit_code, EXIT_OVER_PROMISES)
    sys.exit(exit_code)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The tree as one JSON object.")
@one_line_errors
def lddtree(file: str, as_json: bool) -> None:
    """The shared libraries FILE needs, resolved on this machine as the dynamic loader would."""
    from fastaudit.files import check_regular
    from fastaudit.lddtree import resolve_on_host
    from fastaudit.report.show import render_tree, tree_to_json

    check_regular(file)  # a FIFO or a device is refused, not read for ever
    tree = resolve_on_host(file)
    if as_json:
        click.echo(json.dumps(tree_to_json(tree)))
    else:
        click.echo(render_tree(tree))  # escaped by the renderer


@main.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--db", default="fastaudit.db", show_default=True, type=click.Path(dir_okay=False),
              help="The SQLite store results go to.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the machine's cores).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Send batches to a dask.distributed scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--rescan", is_flag=True, help="Analyze every wheel again, even those already in the store.")
@click.option("--verify-hash", is_flag=True, help="Identify wheels by sha256 instead of path, size and mtime.")
@click.option("--no-elf-cache", is_flag=True, help="Inflate and parse every ELF member, even recurring ones.")
@click.option("--no-stored-elf-cache", is_flag=True,
              help="Keep the ELF cache within this run: do not reuse, nor store, the facts of earlier runs.")
@click.option("--elf-cache-max-mb", type=click.IntRange(min=0), default=1024, show_default=True,
              help="MiB of ELF facts the store keeps for later runs (least recently used first out).")
@click.option("--stored-elf-cache-min-kb", type=click.IntRange(min=0), default=1024, show_default=True,
              help="Keep the facts of ELF members of at least this many KiB for later runs (smaller ones are "
                   "cheaper to read again).")
@click.option("--jsonl", default=None, metavar="FILE",
              help="Also write one JSON line per wheel of this run (skipped ones included).")
@click.option("--verify-record", is_flag=True,
              help="Also check every member against its RECORD hash (reads every member).")
@click.option("--strict", is_flag=True, help="Exit 1 when any wheel over-promises.")
@click.option("--advisories", "advisories_file", type=click.Path(dir_okay=False), default=None,
              help="A JSON file of advisories (fastaudit's format or OSV records): after the scan, list the wheels "
                   "that ship an affected library version.")
@one_line_errors
def scan_command(paths: tuple[str, ...], db: str, jobs: int | None, scheduler: str | None, rescan: bool,
                 verify_hash: bool, no_elf_cache: bool, no_stored_elf_cache: bool, elf_cache_max_mb: int,
                 stored_elf_cache_min_kb: int,
                 verify_record: bool, jsonl: str | None, strict: bool, advisories_file: str | None) -> None:
    """Audit every wheel under PATHS (folders or a bandersnatch mirror) into the store."""
    from fastaudit.advisories import findings, load_advisories
    from fastaudit.files import check_output_file
    from fastaudit.report.scan import render_summary
    from fastaudit.scan import ScanOptions, scan
    from fastaudit.store import Store

    options = ScanOptions(jobs=jobs or os.cpu_count() or 1, scheduler=scheduler, rescan=rescan,
                          verify_hash=verify_hash, elf_cache=not no_elf_cache,
                          stored_elf_cache=not no_stored_elf_cache, elf_cache_max_bytes=elf_cache_max_mb << 20,
                          stored_elf_cache_min_bytes=stored_elf_cache_min_kb << 10,
                          verify_record=verify_record)
    if jsonl and jsonl != "-":
        check_output_file(jsonl)  # before the scan, not after an hour of it
    advisories = load_advisories(advisories_file) if advisories_file else ()  # refused before the scan too
    affected = []
    with Store(db) as store:
        summary = scan(paths, store, options, progress=True)
        if jsonl:
            write_jsonl(store.run_lines(summary.run_id), jsonl)
        if advisories:
            affected = findings(advisories, store.vendored_libraries(summary.run_id))
    click.echo(render_summary(summary))  # escaped by the renderer
    if advisories_file:
        echo(f"  advisories: {len(affected)} affected members")
        for f in affected:
            echo(f"    {f.advisory.id}: {f.advisory.library} {f.version} in {f.wheel} ({f.member})")
    if summary.status == "interrupted":
        sys.exit(130)
    sys.exit(EXIT_OVER_PROMISES if strict and (summary.over_promising or affected) else EXIT_CONSISTENT)


@main.command("repair")
@click.argument("wheels", nargs=-1, required=True)
@click.option("--plat", default="auto", show_default=True, metavar="TAG", envvar="AUDITWHEEL_PLAT",
              show_envvar=True,
              help="Target tag (e.g. manylinux_2_17_x86_64, manylinux2014), or auto for the most compatible.")
@click.option("-w", "--wheel-dir", default="wheelhouse", show_default=True, metavar="DIR",
              help="Folder the repaired wheels go to.")
@click.option("-L", "--lib-sdir", default=".libs", show_default=True,
              help="Suffix of the folder grafted libraries go to: <distribution><suffix>/.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Leave libraries matching this fnmatch pattern (soname or host path) outside; repeatable.")
@click.option("--strip", is_flag=True, help="Strip symbols (strip -s) from the ELF members and grafted libraries.")
@click.option("--only-plat", is_flag=True,
              help="Tag with the target only, not with more compatible tags it also meets.")
@click.option("--no-update-tags", is_flag=True, help="Keep the file name and the WHEEL tags as they are.")
@click.option("-z", "--zip-compression-level", type=click.IntRange(-1, 9), default=-1, show_default=True,
              envvar="AUDITWHEEL_ZIP_COMPRESSION_LEVEL", show_envvar=True,
              help="zlib level for the members repair writes (unchanged members are copied as stored).")
@click.option("--disable-isa-ext-check", is_flag=True,
              help="Do not let x86-64 ISA levels (v2, v3, v4) lower the target.")
@click.option("--ldpaths", default=None, metavar="DIRS",
              help="Colon-separated folders searched for external libraries instead of ld.so.conf and the "
                   "default folders (LD_LIBRARY_PATH, or AUDITWHEEL_LD_LIBRARY_PATH, is still searched first).")
@click.option("--allow-pure-python-wheel", is_flag=True,
              help="Accepted for auditwheel's sake: a pure wheel is always copied as it is, with exit 0.")
@click.option("--clear-execstack", is_flag=True,
              help="Clear PF_X in the PT_GNU_STACK of members and grafted libraries that ask for an executable "
                   "stack (glibc 2.41+ refuses to dlopen them); without it repair refuses such a wheel.")
@one_line_errors
def repair_command(wheels: tuple[str, ...], plat: str, wheel_dir: str, lib_sdir: str, exclude: tuple[str, ...],
                   strip: bool, only_plat: bool, no_update_tags: bool, zip_compression_level: int,
                   disable_isa_ext_check: bool, ldpaths: str | None, allow_pure_python_wheel: bool,
                   clear_execstack: bool) -> None:
    """Graft the external libraries each WHEEL needs and tag it with the policy it then meets.

    Wheels are repaired in turn; as with auditwheel, the first that fails stops the call (those
    before it stay repaired, those after it are not tried). Exit 0: every wheel repaired (or pure,
    copied as it is); 2: a wheel cannot reach the target tag (the message names the symbol
    versions, libraries and members in the way), is unreadable, or would lose another's output.
    """
    from fastaudit.repair import RepairOptions, repair_wheels

    options = RepairOptions(plat=plat, lib_sdir=lib_sdir, exclude=exclude, strip=strip, only_plat=only_plat,
                            update_tags=not no_update_tags, compression_level=zip_compression_level,
                            check_isa=not disable_isa_ext_check, clear_execstack=clear_execstack,
                            # auditwheel's own variable, when set, stands in for LD_LIBRARY_PATH
                            ld_library_path=os.environ.get("AUDITWHEEL_LD_LIBRARY_PATH"),
                            ldpaths=tuple(d for d in ldpaths.split(":") if d) if ldpaths is not None else None)
    for result in repair_wheels(wheels, wheel_dir, options):  # the first error ends the call, in one line
        for warning in result.warnings:
            click.echo(f"fastaudit: warning: {printable(warning)}", err=True)
        if result.note:
            echo(f"{result.wheel}: {result.note}")
            continue
        grafted = ", ".join(f"{soname} ({source})" for soname, source in result.grafted) or "nothing"
        echo(str(result.output), f"  tag: {result.tag}", f"  grafted: {grafted}")
        for script, home in result.moved_scripts:
            echo(f"  moved: {script} -> {home} (a launcher takes its place)")
        if result.excluded:
            echo(f"  left outside (--exclude): {', '.join(result.excluded)}")


@main.command("export")
@click.option("--db", default="fastaudit.db", show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--run", "run_id", type=int, default=None, help="The run to export (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("-o", "--output", default="-", metavar="FILE", help="File to write, - for stdout.")
@one_line_errors
def export_command(db: str, run_id: int | None, fmt: str, output: str) -> None:
    """Write the results of a run as JSON lines (show --json objects plus path) or CSV."""
    from fastaudit.files import check_output_file
    from fastaudit.store import Store, StoreError, to_csv

    if output != "-":
        check_output_file(output)
    with Store(db, readonly=True) as store:
        run = store.run(run_id)
        if run is None:
            raise StoreError("no such run" if run_id else "the store has no runs", path=db)
        if run.status != "completed":  # a killed, interrupted or still running scan: partial results
            click.echo(f"fastaudit: warning: run {run.id} is {run.status}: its results are partial", err=True)
        lines = store.run_lines(run.id)
        if fmt == "jsonl":
            write_jsonl(lines, output)
        else:
            write_text([to_csv(lines)], output)


@main.command("report")
@click.option("--db", default="fastaudit.db", show_default=True, type=click.Path(dir_okay=False),
              help="The store to report on (read only).")
@click.option("-o", "--output", "out_dir", default="report", show_default=True, metavar="DIR",
              help="Folder for report.html, report.md and report.json (created if missing).")
@click.option("--run", "run_id", type=int, default=None, help="The run to report (default: the latest completed).")
@click.option("--compare-to", type=int, default=None,
              help="The run to show changes against (default: the latest completed run before it).")
@click.option("--format", "formats", multiple=True, type=click.Choice(["html", "md", "json"]),
              help="Write only these formats (repeatable; default: all three).")
@click.option("--advisories", "advisories_file", type=click.Path(dir_okay=False), default=None,
              help="A JSON file of advisories (fastaudit's format or OSV records): list the wheels that ship "
                   "an affected library version.")
@one_line_errors
def report_command(db: str, out_dir: str, run_id: int | None, compare_to: int | None,
                   formats: tuple[str, ...], advisories_file: str | None) -> None:
    """The nightly report of a run: HTML with charts, Markdown and JSON, from the store alone."""
    from fastaudit.advisories import load_advisories
    from fastaudit.report.nightly import FORMATS, write_report

    advisories = load_advisories(advisories_file) if advisories_file else None
    for path in write_report(db, out_dir, formats or tuple(FORMATS), run_id, compare_to, advisories):
        echo(str(path))


@main.command("abi3")
@click.argument("wheels", nargs=-1, required=True)
@click.option("-S", "--strict", is_flag=True, help="Also fail (exit 1) on a wheel with nothing to audit.")
@click.option("-R", "--report", "as_report", is_flag=True, help="Write abi3audit's JSON report (see --output).")
@click.option("-o", "--output", default="-", metavar="FILE", help="File for --report, - for stdout.")
@click.option("-s", "--summary", is_flag=True, help="Print the summary of every wheel, not only failing ones.")
@one_line_errors
def abi3_command(wheels: tuple[str, ...], strict: bool, as_report: bool, output: str, summary: bool) -> None:
    """Check that each abi3 WHEEL uses only the stable ABI of the version its cp3X-abi3 tag names;
    a drop-in for `abi3audit --strict --report` (cibuildwheel's audit-command).

    Exit 0: every wheel keeps its promise; 1: a wheel breaks it (or, with --strict, has no abi3 tag
    or *.abi3.so to audit); 2: unreadable input.
    """
    from fastaudit.analyze import audit_abi3
    from fastaudit.files import check_output_file
    from fastaudit.report.abi3 import abi3audit_report, render_summary

    if as_report and output != "-":
        check_output_file(output)  # before the wheels are read
    exit_code, audited = EXIT_CONSISTENT, []
    for path in wheels:
        try:
            abi3 = audit_abi3(path)
        except FastauditError as e:
            say_error(e)
            exit_code = EXIT_USAGE_OR_UNREADABLE
            continue
        if abi3 is None:
            click.echo(printable(f"fastaudit: {path}: not abi3-tagged and no *.abi3.so: nothing to audit"), err=True)
            exit_code = max(exit_code, EXIT_OVER_PROMISES if strict else EXIT_CONSISTENT)
            continue
        audited.append((path, abi3))
        if abi3.reasons or summary:
            for line in render_summary(path, abi3):
                click.echo(printable(line), err=True)
        if abi3.reasons:
            exit_code = max(exit_code, EXIT_OVER_PROMISES)
    if as_report:
        write_text([json.dumps(abi3audit_report(audited)) + "\n"], output)
    sys.exit(exit_code)


def write_text(chunks: Iterable[str], output: str) -> None:
    """Write to a file atomically (see fastaudit.files), or to stdout for `-`."""
    from fastaudit.files import atomic_output

    if output == "-":
        stdout = sys.stdout
        for chunk in chunks:
            stdout.write(chunk)
        return
    with atomic_output(output) as out:
        for chunk in chunks:
            out.write(chunk)


def write_jsonl(lines: Iterable[dict[str, Any]], output: str) -> None:
    write_text((json.dumps(line) + "\n" for line in lines), output)


@main.command("sbom")
@click.argument("wheels", nargs=-1, required=True)
@click.option("-o", "--output-dir", default=None, metavar="DIR",
              help="Write <wheel>.cdx.json into this folder instead of printing.")
@one_line_errors
def sbom_command(wheels: tuple[str, ...], output_dir: str | None) -> None:
    """The native libraries each wheel ships, as a CycloneDX 1.6 SBOM (PEP 770), from its binaries.

    One wheel prints an indented document; several print one document per line. Exit 2 when a
    wheel cannot be read (the others are still written)."""
    from fastaudit.files import atomic_output, prepare_output_folder
    from fastaudit.sbom import wheel_sbom

    folder = prepare_output_folder(output_dir) if output_dir is not None else None
    exit_code = EXIT_CONSISTENT
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    for wheel in wheels:
        try:
            document = wheel_sbom(wheel, source_date_epoch=epoch)
        except FastauditError as e:
            say_error(e)
            exit_code = EXIT_USAGE_OR_UNREADABLE
            continue
        if folder is None:
            click.echo(json.dumps(document, indent=1 if len(wheels) == 1 else None))
            continue
        with atomic_output(folder / (os.path.basename(wheel) + ".cdx.json")) as out:
            out.write(json.dumps(document, indent=1) + "\n")
    sys.exit(exit_code)
