"""One source for every published figure: the README quotes BENCHMARKS.md.

The convention, for whoever adds a figure to the README:

- Measured figures go in the README's "Key figures" table, one row per result:
  ``| what | figures | [section](https://github.com/probae/probae/blob/main/BENCHMARKS.md#anchor) |``.
  Every number in the *figures* cell must appear, as written there, in the section of
  BENCHMARKS.md that the row's link names (the heading with that anchor, down to the next
  heading of the same or a higher level). Measure first, write BENCHMARKS.md, then quote it.
- Anywhere else in the README's prose (outside code), a number with a decimal point must
  appear somewhere in BENCHMARKS.md (write versions as "Python 3.11, 3.12 or 3.13" or in
  `code`).

The checks below also cover the other disagreements issue 21 listed (the quickstart's time,
the CLI's ``--architecture`` default).
"""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_URL = "https://github.com/probae/probae/blob/main/BENCHMARKS.md"
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\d])")


def _read(name):
    path = os.path.join(REPO, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} is not here (an unpacked sdist)")
    with open(path, encoding="utf-8") as f:
        return f.read()


def numbers(text):
    """The numbers written in ``text`` ("1,913" is 1913; "1.21x" is 1.21), as strings."""
    text = text.replace("−", "-")  # a typographic minus is a minus
    return [n.replace(",", "") for n in NUMBER.findall(text)]


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections(markdown):
    """``{anchor: text}`` for every heading: the heading's section down to the next heading
    of the same or a higher level (subsections included)."""
    lines = markdown.splitlines()
    heads = [
        (i, len(m.group(1)), m.group(2))
        for i, line in enumerate(lines)
        if (m := re.match(r"^(#{1,6}) (.+)$", line))
    ]
    out = {}
    for k, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[k + 1 :] if lv <= level), len(lines))
        out[github_anchor(title)] = "\n".join(lines[i:end])
    return out


def key_figure_rows(readme):
    """``[(what, figures, anchor)]`` of the README's "Key figures" table."""
    part = readme.split("## Key figures", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("what", "---") or set(cells[0]) <= {"-"}:
            continue
        link = re.search(re.escape(BENCHMARKS_URL) + r"#([\w\-]+)\)", cells[2])
        rows.append((cells[0], cells[1], link.group(1) if link else None))
    return rows


def prose(markdown):
    """The Markdown without fenced code, code spans, links' targets and HTML comments."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


# ------------------------------------------------------------------ the helpers
def test_numbers_and_anchors_are_read_as_written():
    assert numbers("85.66 ± 0.24 nats, 1.21x, 1,913 ex/s, -141.17, k = 500, 0.9745") == [
        "85.66",
        "0.24",
        "1.21",
        "1913",
        "-141.17",
        "500",
        "0.9745",
    ]
    assert "0.99" not in numbers("AUROC 0.9975")  # a prefix of a number is not the number
    assert github_anchor("Test NLL on binarized MNIST (issue 4)") == (
        "test-nll-on-binarized-mnist-issue-4"
    )
    assert github_anchor("### ADBench tabular datasets: `AnomalyDetector` defaults".lstrip("# "))
    text = "# A\nintro\n## B\nb 1.5\n### C\nc 2.5\n## D\nd 3.5\n"
    found = sections(text)
    assert "2.5" in found["b"] and "3.5" not in found["b"] and "3.5" in found["a"]


# ------------------------------------------------------------------ the README
def test_every_key_figure_is_in_the_benchmarks_section_its_row_names():
    readme, benchmarks = _read("README.md"), _read("BENCHMARKS.md")
    found = sections(benchmarks)
    rows = key_figure_rows(readme)
    assert len(rows) >= 5
    for what, figures, anchor in rows:
        assert anchor is not None, f"row {what!r} links to no BENCHMARKS.md section"
        assert anchor in found, f"row {what!r}: BENCHMARKS.md has no heading #{anchor}"
        quoted = numbers(figures)
        assert quoted, f"row {what!r} quotes no figure"
        written = set(numbers(found[anchor]))
        missing = [n for n in quoted if n not in written and n.lstrip("-") not in written]
        assert not missing, f"row {what!r}: {missing} not in BENCHMARKS.md #{anchor}"


def stray_figures(readme, benchmarks):
    """Decimal numbers of the README's prose that BENCHMARKS.md does not hold."""
    written = set(numbers(benchmarks))
    versions = r"Python \d+\.\d+(?:(?:, | or | to )\d+\.\d+)*"  # not figures
    text = re.sub(versions, "", prose(readme))
    return [
        n for n in numbers(text) if "." in n and n not in written and n.lstrip("-") not in written
    ]


def test_decimal_numbers_in_the_readme_prose_are_in_benchmarks():
    stray = stray_figures(_read("README.md"), _read("BENCHMARKS.md"))
    assert not stray, f"README figures not in BENCHMARKS.md: {stray}"
    # The rule itself: signs, bold and code spans as BENCHMARKS.md and the README write them.
    benchmarks = "ELBO **-141.17** nats, AUROC 0.365"
    readme = "ELBO -141.17, AUROC 0.37 on Python 3.11 or 3.12, `x / 255.0`\n```\n1.5\n```\n"
    assert stray_figures(readme, benchmarks) == ["0.37"]


def test_the_checks_fail_on_a_figure_that_disagrees():
    """The same checks on a README row quoting 0.37 and 0.99 for a section that says 0.365
    and 0.994 (the disagreement issue 21 found) report both numbers."""
    benchmarks = "# B\n## Out-of-distribution\nraw 0.365, corrected 0.994\n## Other\n0.37\n"
    readme = (
        "## Key figures\n| what | figures | measured in |\n|---|---|---|\n"
        f"| OOD | AUROC 0.37 -> 0.99 | [OOD]({BENCHMARKS_URL}#out-of-distribution) |\n"
    )
    ((_, figures, anchor),) = key_figure_rows(readme)
    assert [n for n in numbers(figures) if n not in numbers(sections(benchmarks)[anchor])] == [
        "0.37",
        "0.99",
    ]


# ------------------------------------------------------------------ other sources
def test_the_quickstart_time_agrees_with_its_benchmark():
    """examples/quickstart.py's docstring and the README quote the measured wall time."""
    doc = _read("examples/quickstart.py").split('"""')[1]
    benchmarks = sections(_read("BENCHMARKS.md"))["quickstart-examplesquickstartpy-at-its-defaults"]
    seconds = re.search(r"Wall\s+time (\d+) s", benchmarks)
    minutes = re.search(r"about (\d+) minutes", doc)
    assert seconds and minutes
    assert abs(int(minutes.group(1)) * 60 - int(seconds.group(1))) <= 30
    assert f"{seconds.group(1)} s" in _read("README.md")


def test_the_cli_architecture_help_states_its_default():
    from probae import cli

    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if "--architecture" in a.option_strings]
    assert f"(default {action.default})" in action.help
