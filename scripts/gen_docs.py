"""Pages generated when the documentation is built (mkdocs-gen-files runs this script).

- reference/cli.md: the help of every `efsnas` subcommand, printed by the argparse parsers
  themselves (`efsnas.cli.main.build_parser`), so the reference cannot drift from the code;
- reference/api/: one mkdocstrings page per public module of the package, and its navigation;
- figures drawn by efsnas itself (a NAS-Bench-201 cell) and the study's figure from
  benchmarks/results/, copied as it is.
"""

from __future__ import annotations

import argparse
import os
import pkgutil
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
# Modules left out of the API reference: the command line has its own reference page.
PRIVATE = ("efsnas.__main__", "efsnas.cli")


def _subcommands(parser: argparse.ArgumentParser):
    """(name, parser) of each subcommand, depth first, in the order of `efsnas --help`."""
    for action in parser._actions:  # argparse keeps subparsers here; there is no public API
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for subname, subsub in _subcommands(sub):
                    yield f"{name} {subname}", subsub


def cli_reference() -> str:
    """The CLI reference page: every subcommand's `--help`, as argparse prints it."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; fix it for the page
    from efsnas.cli.main import build_parser

    parser = build_parser()
    lines = ["# Command line reference", "",
             "Generated from the argparse parsers of `efsnas.cli` when the documentation is "
             "built: what you read here is what `efsnas COMMAND --help` prints.", "",
             "```text", parser.format_help().rstrip(), "```", ""]
    for name, sub in _subcommands(parser):
        lines += [f"## efsnas {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("|", "\\|")


def settings_reference() -> str:
    """Every setting of `RunConfig`, section by section (type, default, description), and the
    built-in presets with the comment each opens with."""
    from efsnas.app.config import RunConfig, list_presets

    lines = ["# Settings and presets", "",
             "Generated from `efsnas.app.config.RunConfig` and the preset files in "
             "`src/efsnas/presets/` when the documentation is built. Set any of these with "
             "`--set SECTION.KEY=VALUE` or in a YAML file given to `--config` (see "
             "[Configuration](../guide/configuration.md)).", ""]
    for section, field in RunConfig.model_fields.items():
        model = field.annotation
        if not hasattr(model, "model_fields"):
            default = field.get_default(call_default_factory=True)
            lines += [f"## {section}", "", f"`{section}`: {_type_name(model)}, default "
                      f"`{default!r}`. {field.description or ''}".rstrip(), ""]
            continue
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [f"## {section}", "", doc, "", "| setting | type | default | meaning |",
                  "|---|---|---|---|"]
        for key, f in model.model_fields.items():
            default = f.get_default(call_default_factory=True)
            desc = (f.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{section}.{key}` | {_type_name(f.annotation)} | `{default!r}` | "
                         f"{desc} |")
        lines.append("")
    lines += ["## Presets", "", "`--preset NAME`; a preset may start from another (`base:`).", "",
              "| preset | what its file says |", "|---|---|"]
    folder = ROOT / "src/efsnas/presets"
    for name in list_presets():
        comment = []
        for line in (folder / f"{name}.yaml").read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("# ").strip())
        lines.append(f"| `{name}` | {' '.join(comment).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def public_modules() -> list[str]:
    """Every importable module of efsnas whose path has no private part, minus PRIVATE."""
    import efsnas

    names = ["efsnas"]
    for info in pkgutil.walk_packages(efsnas.__path__, "efsnas."):
        if any(info.name == p or info.name.startswith(p + ".") for p in PRIVATE):
            continue
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        names.append(info.name)
    return sorted(names)


def api_reference() -> None:
    """One page per public module under reference/api/, and reference/api/SUMMARY.md."""
    nav = mkdocs_gen_files.Nav()
    for name in public_modules():
        parts = tuple(name.split("."))
        doc = Path(*parts).with_suffix(".md")
        nav[parts] = doc.as_posix()
        with mkdocs_gen_files.open(Path("reference/api") / doc, "w") as f:
            f.write(f"# {name}\n\n::: {name}\n    options:\n      show_root_heading: false\n"
                    "      show_submodules: false\n")
    with mkdocs_gen_files.open("reference/api/SUMMARY.md", "w") as f:
        f.writelines(nav.build_literate_nav())


def figures() -> None:
    """The method page's cell picture (drawn by efsnas) and the ranking study's figure."""
    import tempfile

    from efsnas import create_space
    from efsnas.draw import draw_subnet

    space = create_space("nb201", C=8, N=1)
    cell = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|none~1|"
            "nor_conv_1x1~2|")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cell.svg"
        draw_subnet(space, cell, path)
        with mkdocs_gen_files.open("img/nb201-cell.svg", "wb") as f:
            f.write(path.read_bytes())
    for name, source in [("ranking-study.png", "fmnist-study/compare.png"),
                         ("study1-quality-vs-cost.png", "study1/quality_vs_cost.png"),
                         ("study2-quality-vs-cost.png", "study2/quality_vs_cost.png"),
                         ("mobilenet-cpu-found.png", "mobilenet-cpu-run/best_cell.png"),
                         ("mobilenet-study-equal.png", "mobilenet-study/equal/compare.png"),
                         ("mobilenet-study-quality-vs-cost.png",
                          "mobilenet-study/quality_vs_cost.png")]:
        with mkdocs_gen_files.open(f"img/{name}", "wb") as f:
            f.write((ROOT / "benchmarks/results" / source).read_bytes())


with mkdocs_gen_files.open("reference/cli.md", "w") as f:
    f.write(cli_reference())
with mkdocs_gen_files.open("reference/settings.md", "w") as f:
    f.write(settings_reference())
api_reference()
figures()
