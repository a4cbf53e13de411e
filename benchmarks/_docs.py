"""Writing a benchmark's figures into docs/benchmarks.md, between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` (markers added at the end when the file lacks them), through a temporary file
and a rename so that an interrupted run never leaves a truncated document."""

from __future__ import annotations

from pathlib import Path


def write_between(md: Path, name: str, text: str) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = md.read_text() if md.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in doc or end not in doc:
        doc += f"\n{begin}\n{end}\n"
    a, rest = doc.split(begin, 1)
    _, b = rest.split(end, 1)
    tmp = md.with_name(md.name + ".part")
    tmp.write_text(a + begin + "\n" + text + "\n" + end + b)
    tmp.replace(md)
