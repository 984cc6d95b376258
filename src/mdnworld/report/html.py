"""Plain HTML pieces of the report: escaping, links, tables, figures, videos, sections and the
page around them (one inline stylesheet, no JavaScript). Numbers as text: ``mdnworld.text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --soft: #f6f8fa;
        --link: #0550ae; --warn: #9a6700; --warnbg: #fff8c5; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.5;
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0; }
h2 { font-size: 1.3rem; margin: 0 0 0.4rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; }
section { border-top: 1px solid var(--line); padding: 1.2rem 0 0.6rem; }
a { color: var(--link); }
a.num { text-decoration: none; border-bottom: 1px dotted var(--link);
        font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
            font-size: 0.9em; background: var(--soft); border-radius: 4px; }
code { padding: 0 0.25em; overflow-wrap: anywhere; }
p, li, figcaption { overflow-wrap: anywhere; }
.how { color: var(--muted); margin: 0 0 0.8rem; font-size: 0.95rem; }
.missing { background: var(--warnbg); color: var(--warn); padding: 0.4rem 0.6rem;
           border-radius: 4px; }
.meta { color: var(--muted); font-size: 0.9rem; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.2rem 1.2rem; list-style: none; padding: 0;
         margin: 0.5rem 0; }
nav .absent { color: var(--muted); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(10rem, 1fr));
         gap: 0.5rem; margin: 0.6rem 0; padding: 0; list-style: none; }
.facts li { background: var(--soft); border-radius: 6px; padding: 0.4rem 0.6rem; }
.facts .v { display: block; font-size: 1.15rem; font-weight: 600; }
.facts .k { display: block; color: var(--muted); font-size: 0.8rem; }
figure { margin: 0.8rem 0; }
figure img, figure video { display: block; width: 100%; height: auto; background: #000;
                           border-radius: 4px; }
figure img.plot { background: #fff; border: 1px solid var(--line); }
img.pixel { image-rendering: pixelated; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 0.25rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap: 0 1rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.6rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 0.25rem 0.55rem; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--soft); }
tr.hl th, tr.hl td { background: #ddf4ff; }
.caption { color: var(--muted); font-size: 0.85rem; margin: -0.3rem 0 0.8rem; }
footer { color: var(--muted); font-size: 0.85rem; border-top: 1px solid var(--line);
         margin-top: 1.5rem; padding-top: 0.6rem; }
@media (max-width: 40rem) {
  main { padding: 0.6rem; } h1 { font-size: 1.3rem; } body { font-size: 15px; }
}
"""


def esc(x: Any) -> str:
    return escape(str(x), quote=True)


def link(text: str, href: str, title: str = "", cls: str = "") -> str:
    """An ``<a>`` with already-escaped ``text``."""
    attrs = f' href="{esc(href)}"'
    if cls:
        attrs += f' class="{cls}"'
    if title:
        attrs += f' title="{esc(title)}"'
    return f"<a{attrs}>{text}</a>"


def code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def how(line1: str, line2: str) -> str:
    """The two lines on how to read a section (``line*`` are HTML)."""
    return f'<p class="how">{line1}<br>{line2}</p>'


def missing(what: str, command: str | None = None) -> str:
    """One plain line: what is missing (HTML) and the command that makes it."""
    tail = f" Make it with {code(command)}." if command else ""
    return f'<p class="missing">Missing: {what}.{tail}</p>'


def facts(items: Iterable[tuple[str, str]]) -> str:
    """Key figures as tiles: ``(label, value_html)`` pairs."""
    lis = "".join(
        f'<li><span class="v">{v}</span><span class="k">{esc(k)}</span></li>' for k, v in items
    )
    return f'<ul class="facts">{lis}</ul>'


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    caption: str = "",
    highlight: Iterable[int] = (),
) -> str:
    """A horizontally scrollable table; cells are HTML; the first cell of a row is its header."""
    hl = set(highlight)
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = f'<th scope="row">{row[0]}</th>' + "".join(f"<td>{c}</td>" for c in row[1:])
        cls = ' class="hl"' if i in hl else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f'<p class="caption">{caption}</p>' if caption else ""
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{cap}"
    )


def image(src: str, alt: str, caption: str = "", plot: bool = False, pixel: bool = False) -> str:
    cls = " ".join(c for c, on in (("plot", plot), ("pixel", pixel)) if on)
    cls_attr = f' class="{cls}"' if cls else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    img = f'<img src="{esc(src)}" alt="{esc(alt)}"{cls_attr}>'
    return f'<figure><a href="{esc(src)}" title="open full size">{img}</a>{cap}</figure>'


def video(src: str, caption: str = "", poster: str | None = None) -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    poster_attr = f' poster="{esc(poster)}"' if poster else ""
    return (
        f'<figure><video src="{esc(src)}"{poster_attr} controls muted loop playsinline '
        'preload="metadata">'
        f'Your browser cannot play MP4: <a href="{esc(src)}">download it</a>.</video>{cap}</figure>'
    )


def grid(items: Iterable[str]) -> str:
    return f'<div class="grid">{"".join(items)}</div>'


@dataclass
class Section:
    id: str
    title: str
    how: str
    body: str
    present: bool
    """False when its main inputs are missing (the body then says which and how to make them)."""

    def html(self) -> str:
        return f'<section id="{self.id}"><h2>{esc(self.title)}</h2>{self.how}{self.body}</section>'


def page(title: str, header: str, sections: Sequence[Section], footer: str) -> str:
    nav = "".join(
        f'<li class="{"present" if s.present else "absent"}">'
        f'<a href="#{s.id}">{esc(s.title)}</a>{"" if s.present else " (missing)"}</li>'
        for s in sections
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head>\n<body><main>\n"
        f"<header><h1>{esc(title)}</h1>{header}"
        f'<nav aria-label="sections"><ul>{nav}</ul></nav></header>\n'
        + "\n".join(s.html() for s in sections)
        + f"\n<footer>{footer}</footer>\n</main></body></html>\n"
    )
