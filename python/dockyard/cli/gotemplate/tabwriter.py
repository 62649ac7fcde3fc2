"""Go's text/tabwriter with flags 0 (docker's fork: East-Asian wide runes
count as 2 columns)."""

from __future__ import annotations


def _text_width(s: str) -> int:
    if s.isascii():
        return len(s)
    import unicodedata

    w = 0
    for c in s:
        if unicodedata.combining(c) or c in "\u200b\u200c\u200d":
            continue
        w += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return w


def tabwrite(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3, padchar: str = " ") -> str:
    """Align ``\\t``-terminated cells like Go's text/tabwriter (flags 0)."""
    lines = [ln.split("\t") for ln in text.split("\n")]
    widths_cache = [[_text_width(c) for c in ln] for ln in lines]
    out: list = []
    nlines = len(lines)

    def pad(textw, cellw):
        if padchar == "\t":
            if tabwidth == 0:
                return ""
            cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
            n = cellw - textw
            return "\t" * ((n + tabwidth - 1) // tabwidth)
        return padchar * (cellw - textw)

    def write_lines(widths, l0, l1):
        for i in range(l0, l1):
            cells = lines[i]
            cw = widths_cache[i]
            parts = []
            for j, c in enumerate(cells):
                parts.append(c)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(pad(cw[j], widths[j]))
            out.append("".join(parts))
            if i + 1 < nlines:
                out.append("\n")

    def fmt(widths, line0, line1):
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(widths, line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                if column >= len(lines[this]) - 1:
                    break
                w = widths_cache[this][column] + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(widths, line0, this)
            widths.pop()
            line0 = this
        write_lines(widths, line0, line1)

    fmt([], 0, nlines)
    return "".join(out)
