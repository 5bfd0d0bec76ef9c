"""The documentation site (mkdocs.yml, docs/): an API reference page for every public name,
generated from probae.__all__; a strict build that fails on a broken link or reference; the
benchmark tables included from BENCHMARKS.md rather than copied.

The build tests need the ``docs`` extra (``pip install -e ".[docs]"``, as CI does) and the
repository's mkdocs.yml; they are skipped without them (an unpacked sdist, a ``dev``-only
environment).
"""

import importlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest

import probae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "mkdocs.yml")
HOOK = os.path.join(REPO, "docs", "hooks", "reference.py")

needs_site = pytest.mark.skipif(
    not os.path.exists(CONFIG) or importlib.util.find_spec("mkdocstrings") is None,
    reason="needs mkdocs.yml and the docs extra (pip install -e '.[docs]')",
)


def _hook():
    if not os.path.exists(HOOK):
        pytest.skip("docs/ is not here (an unpacked sdist)")
    spec = importlib.util.spec_from_file_location("probae_docs_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resolve(path):
    """The object a dotted path names (a module, or a name in a module)."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        module, name = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)


def test_reference_has_a_page_for_every_public_name():
    hook = _hook()
    pages = hook.reference_pages()
    expected = {f"reference/{name}.md" for name in probae.__all__}
    expected |= {"reference/plotting.md", "reference/index.md"}
    assert set(pages) == expected
    rows = hook.public_names()
    assert [name for name, _, _ in rows][: len(probae.__all__)] == list(probae.__all__)
    for name, path, _ in rows:
        # The page renders the object that probae.<name> really is.
        assert f"::: {path}\n" in pages[f"reference/{name}.md"]
        public = importlib.import_module("probae.plotting") if name == "plotting" else None
        assert _resolve(path) is (public or getattr(probae, name)), name
        assert f"({name}.md)" in pages["reference/index.md"]
    # The navigation lists every page once.
    nav = hook.reference_nav()
    listed = [list(e.values())[0] for group in nav[1:] for e in list(group.values())[0]]
    assert sorted(listed) == sorted(p for p in expected if not p.endswith("index.md"))


def _build(config, site, cwd=REPO):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", site],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@needs_site
def test_site_builds_strict_with_every_name_the_tutorial_and_the_benchmarks(tmp_path):
    site = str(tmp_path / "site")
    result = _build(CONFIG, site)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, path, _ in _hook().public_names():
        with open(os.path.join(site, "reference", name, "index.html"), encoding="utf-8") as f:
            page = f.read()
        assert f'id="{path}"' in page, f"{name}: no rendered docstring of {path}"
    # ProbabilisticAutoencoder's page shows its methods' docstrings.
    with open(os.path.join(site, "reference", "ProbabilisticAutoencoder", "index.html")) as f:
        page = f.read()
    for method in ("fit", "elbo", "log_likelihood", "sample"):
        assert f'id="probae.model.ProbabilisticAutoencoder.{method}"' in page
    # The benchmark page is BENCHMARKS.md itself: every heading and every table row.
    with open(os.path.join(site, "benchmarks", "index.html"), encoding="utf-8") as f:
        html = f.read()
    with open(os.path.join(REPO, "BENCHMARKS.md"), encoding="utf-8") as f:
        source = f.read()
    rows = [line for line in source.splitlines() if line.startswith("|")]
    assert html.count("<tr>") >= len(rows) - source.count("|---")
    for heading in re.findall(r"(?m)^#{2,3} (.+)$", source):
        words = re.sub(r"[`*]", "", heading).split()[0]
        assert words in html
    # The tutorial with its figures.
    with open(os.path.join(site, "tutorial", "index.html"), encoding="utf-8") as f:
        tutorial = f.read()
    for figure in re.findall(r"figures/[\w.]+\.png", tutorial):
        assert os.path.exists(os.path.join(site, figure)), figure


@needs_site
def test_a_broken_reference_or_link_fails_the_strict_build(tmp_path):
    """The site's own configuration (plugins and extensions) on a two-page site: an
    unknown cross-reference and a link to a missing page each fail the build."""
    import yaml

    with open(CONFIG) as f:
        config = yaml.safe_load(f)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# ok\n\n::: probae.seeds.set_seed\n")
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [REPO]
    config = dict(config, docs_dir=str(docs))
    config.pop("hooks")  # the reference pages are not needed here
    config.pop("exclude_docs", None)

    def build(nav):
        path = tmp_path / "mkdocs.yml"
        path.write_text(yaml.safe_dump(dict(config, nav=nav)))
        return _build(str(path), str(tmp_path / "site"), cwd=str(tmp_path))

    for page, text in {
        "ref.md": "# ref\n\nSee [the model][probae.model.NoSuchModel].\n",
        "link.md": "# link\n\nSee [the guide](guide/missing.md).\n",
    }.items():
        (docs / page).write_text(text)
        result = build(["index.md", page])
        assert result.returncode != 0, page
        output = result.stdout + result.stderr
        assert ("NoSuchModel" in output) if page == "ref.md" else ("missing.md" in output)
        (docs / page).unlink()
    # The same site without the broken pages builds.
    result = build(["index.md"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_links_are_absolute_and_name_files_of_the_repository():
    """The README is also the package index page, where relative links break: every link and
    image is an absolute URL, and those into this repository name files that exist."""
    path = os.path.join(REPO, "README.md")
    if not os.path.exists(os.path.join(REPO, "mkdocs.yml")):
        pytest.skip("not a checkout")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(targets) >= 10
    relative = [t for t in targets if not t.startswith(("https://", "http://"))]
    assert not relative, f"relative links in README.md: {relative}"
    prefixes = (
        "https://github.com/probae/probae/blob/main/",
        "https://raw.githubusercontent.com/probae/probae/main/",
    )
    for target in targets:
        for prefix in prefixes:
            if target.startswith(prefix):
                file = target[len(prefix) :].split("#")[0]
                assert os.path.exists(os.path.join(REPO, file)), target
    # It says how to build and open the site.
    assert '.venv/bin/pip install -e ".[docs]"' in text and "mkdocs serve" in text
    assert "mkdocs build --strict" in text
