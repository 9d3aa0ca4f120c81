"""The `fastaudit` command line: parse options, call one library function, render."""
from __future__ import annotations

import json
import sys

import click

from fastaudit.analyze import audit_wheel
from fastaudit.errors import FastauditError
from fastaudit.lddtree import resolve_on_host
from fastaudit.report.show import error_json, render_text, render_tree, to_json, tree_to_json

# Exit codes of `show`, documented in the README.
EXIT_CONSISTENT = 0
EXIT_OVER_PROMISES = 1
EXIT_USAGE_OR_UNREADABLE = 2


@click.group()
@click.version_option(package_name="fastaudit")
def main() -> None:
    """Audit manylinux/musllinux wheels."""


@main.command()
@click.argument("wheels", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per wheel, one per line.")
@click.option("--disable-isa-ext-check", is_flag=True,
              help="Do not let x86-64 ISA levels (v2, v3, v4) lower the verdict.")
def show(wheels: tuple[str, ...], as_json: bool, disable_isa_ext_check: bool) -> None:
    """The platform tag each WHEEL truly satisfies, and whether its file name over-promises.

    Exit 0: consistent with its declared tag; 1: over-promises, or satisfies no manylinux/musllinux
    tag; 2: usage error or unreadable input.
    """
    exit_code = EXIT_CONSISTENT
    for path in wheels:
        try:
            report = audit_wheel(path, check_isa=not disable_isa_ext_check)
        except FastauditError as e:
            click.echo(f"fastaudit: {e}", err=True)
            if as_json:
                click.echo(json.dumps(error_json(path, e)))
            exit_code = max(exit_code, EXIT_USAGE_OR_UNREADABLE)
            continue
        if as_json:
            click.echo(json.dumps(to_json(report), sort_keys=False))
        else:
            click.echo(render_text(report))
        if report.over_promises or report.is_linux_only:
            exit_code = max(exit_code, EXIT_OVER_PROMISES)
    sys.exit(exit_code)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The tree as one JSON object.")
def lddtree(file: str, as_json: bool) -> None:
    """The shared libraries FILE needs, resolved on this machine as the dynamic loader would."""
    try:
        tree = resolve_on_host(file)
    except FastauditError as e:
        click.echo(f"fastaudit: {e}", err=True)
        sys.exit(EXIT_USAGE_OR_UNREADABLE)
    if as_json:
        click.echo(json.dumps(tree_to_json(tree)))
    else:
        click.echo(render_tree(tree))
