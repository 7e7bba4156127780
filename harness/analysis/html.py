"""The report as one self-contained HTML file: the Markdown rendered (python-markdown with its
tables extension), every local image embedded as a base64 data URI, the style inline. Nothing is
fetched from the network, so the file can be mailed or opened anywhere."""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

import markdown

STYLE = """
body { max-width: 1100px; margin: 2em auto; padding: 0 1.5em; color: #222; line-height: 1.45;
       font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0 .3em; }
p > em:only-child { color: #555; font-size: .92em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #bbb; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f4f4f4; padding: 0 .2em; border-radius: 3px; font-size: .92em; }
"""
_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")')


def _embed(match: re.Match[str], image_dir: Path) -> str:
    """The img tag with its source as a data URI when it names a file in `image_dir`."""
    source = html.unescape(match.group(2))
    path = image_dir / source
    if "://" in source or source.startswith("data:") or not path.is_file():
        return match.group(0)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"{match.group(1)}data:{kind};base64,{data}{match.group(3)}"


def markdown_to_html(markdown_text: str, image_dir: str | Path) -> str:
    """A complete HTML document of `markdown_text`, its images (paths relative to `image_dir`)
    embedded; the title is the first level-1 heading."""
    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    body = _IMG_SRC.sub(lambda m: _embed(m, Path(image_dir)), body)
    heading = re.search(r"^# (.+)$", markdown_text, flags=re.MULTILINE)
    title = html.escape(heading.group(1).strip() if heading else "report")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"</body>\n</html>\n"
    )
