"""Plain text from an HTML body, for snippets and for messages without a text part."""

import re
from html.parser import HTMLParser
from typing import Final

_BLOCK_TAGS: Final = frozenset(
    {"address", "article", "blockquote", "br", "div", "footer", "header", "hr", "li", "ol"}
    | {"p", "pre", "section", "table", "tr", "ul"}
    | {f"h{level}" for level in range(1, 7)}
)
_HIDDEN_TAGS: Final = frozenset({"head", "script", "style", "template", "title"})
_SPACES: Final = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES: Final = re.compile(r"\n\s*\n+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden_depth == 0:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Visible text of ``html`` with block elements on their own lines."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(collector.chunks).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
