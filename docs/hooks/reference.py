"""MkDocs hook: the API reference, one page per public name, generated from probae.__all__.

Nothing in the reference is typed by hand: a name added to ``probae.__all__`` gets its
page (its docstring, rendered by mkdocstrings) and its place in the navigation at the next
build, and a name removed loses them. Names are grouped in the navigation by the module
that defines them. ``probae.plotting``, imported on its own to keep matplotlib out of
``import probae``, gets a page too.

Used by mkdocs.yml (``hooks:``); ``reference_pages()`` is what tests/test_docs.py checks.
"""

import importlib.util
import types

FOLDER = "reference"
# Public modules that are not in probae.__all__ because they are imported on their own.
SEPARATE_MODULES = {"plotting": "probae.plotting"}


def _defining_module(name):
    """The module that defines ``probae.<name>`` (without importing TensorFlow when the
    package's lazy table says it)."""
    import probae

    table = getattr(probae, "_LAZY", {})
    if name in table:
        return table[name]
    value = getattr(probae, name)
    return value.__name__ if isinstance(value, types.ModuleType) else value.__module__


def public_names():
    """``[(name, dotted path of its definition, group)]`` for every public name: the names
    of ``probae.__all__`` in their order, then the separately imported modules."""
    import probae

    rows = []
    for name in probae.__all__:
        module = _defining_module(name)
        if module == f"probae.{name}":  # a public submodule
            rows.append((name, module, "modules"))
        else:
            rows.append((name, f"{module}.{name}", module))
    for name, module in SEPARATE_MODULES.items():
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"SEPARATE_MODULES names a module that does not exist: {module}")
        rows.append((name, module, "modules"))
    return rows


def reference_pages():
    """``{path under docs/: markdown}`` for the reference: an overview and one page per
    public name."""
    pages = {}
    groups = {}
    rows = public_names()
    own_page = {path for _, path, _ in rows}
    for name, path, group in rows:
        text = f"# `probae.{name}`\n\n::: {path}\n"
        # A module's page leaves out the members that have a page of their own (one
        # primary place per object for cross-references) and links to them instead.
        elsewhere = sorted(p for p in own_page if p.rsplit(".", 1)[0] == path)
        if elsewhere:
            names = [p.rsplit(".", 1)[1] for p in elsewhere]
            text += '    options:\n      filters:\n        - "!^_"\n'
            text += "".join(f'        - "!^{n}$"\n' for n in names)
            links = ", ".join(f"[`probae.{n}`]({n}.md)" for n in names)
            text += f"\nAlso in this module, each on its own page: {links}.\n"
        pages[f"{FOLDER}/{name}.md"] = text
        groups.setdefault(group, []).append((name, path))
    lines = [
        "# API reference",
        "",
        "One page per public name of `probae` (`probae.__all__`), generated from the",
        "docstrings at every build; grouped by the module that defines each name.",
        "",
    ]
    for group, members in groups.items():
        lines.append(f"## {'public modules' if group == 'modules' else f'`{group}`'}")
        lines.append("")
        for name, path in members:
            lines.append(f"- [`probae.{name}`]({name}.md) (`{path}`)")
        lines.append("")
    pages[f"{FOLDER}/index.md"] = "\n".join(lines)
    return pages


def reference_nav():
    """The navigation entries of the reference, grouped by defining module."""
    nav = [{"Overview": f"{FOLDER}/index.md"}]
    groups = {}
    for name, _, group in public_names():
        title = "public modules" if group == "modules" else group
        groups.setdefault(title, []).append({name: f"{FOLDER}/{name}.md"})
    nav.extend({title: entries} for title, entries in groups.items())
    return nav


# ------------------------------------------------------------------ MkDocs events
def on_config(config):
    nav = config.nav or []
    config.nav = [*nav, {"API reference": reference_nav()}]
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for path, text in reference_pages().items():
        files.append(File.generated(config, path, content=text))
    return files
