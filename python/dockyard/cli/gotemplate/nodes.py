"""The parse tree (Go's text/template/parse node.go); `str()` of a node prints
it back the way Go quotes it in error messages."""

from __future__ import annotations

from .lexer import SPACE
from .strconv import go_quote


class Node:
    """A parse tree node; `pos` is its offset in the template text."""

    __slots__ = ("pos",)


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos):
        self.pos = pos
        self.nodes = []

    def __str__(self):
        return "".join(str(n) for n in self.nodes)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos, text):
        self.pos = pos
        self.text = text

    def __str__(self):
        return go_quote(self.text)


class PipeNode(Node):
    __slots__ = ("decl", "is_assign", "cmds", "line")

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line
        self.decl = []
        self.is_assign = False
        self.cmds = []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    __slots__ = ("pipe", "line")

    def __init__(self, pos, line, pipe):
        self.pos = pos
        self.line = line
        self.pipe = pipe

    def __str__(self):
        return "{{%s}}" % self.pipe


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos):
        self.pos = pos
        self.args = []

    def __str__(self):
        return " ".join(
            "(%s)" % a if isinstance(a, PipeNode) else str(a) for a in self.args
        )


class IdentNode(Node):
    __slots__ = ("name",)

    def __init__(self, pos, name):
        self.pos = pos
        self.name = name

    def __str__(self):
        return self.name


class VarNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos, ident):
        self.pos = pos
        self.ident = ident  # ["$x", "Field", ...]

    def __str__(self):
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class NilNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "nil"


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos, ident):
        self.pos = pos
        self.ident = ident  # ["A", "B"]

    def __str__(self):
        return "".join("." + i for i in self.ident)


class ChainNode(Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos, node):
        self.pos = pos
        self.node = node
        self.fields = []

    def __str__(self):
        s = "(%s)" % self.node if isinstance(self.node, PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.fields)


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos, value):
        self.pos = pos
        self.value = value

    def __str__(self):
        return "true" if self.value else "false"


class NumberNode(Node):
    __slots__ = ("value", "text")

    def __init__(self, pos, value, text):
        self.pos = pos
        self.value = value
        self.text = text

    def __str__(self):
        return self.text


class StringNode(Node):
    __slots__ = ("value", "quoted")

    def __init__(self, pos, quoted, value):
        self.pos = pos
        self.quoted = quoted
        self.value = value

    def __str__(self):
        return self.quoted


class EndNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "{{end}}"


class ElseNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "{{else}}"


class BranchNode(Node):
    __slots__ = ("kind", "pipe", "list", "else_list", "line")

    def __init__(self, kind, pipe, lst, else_list):
        self.kind = kind  # "if", "range", "with"
        self.pos = pipe.pos
        self.line = pipe.line
        self.pipe = pipe
        self.list = lst
        self.else_list = else_list

    def __str__(self):
        s = "{{%s %s}}%s" % (self.kind, self.pipe, self.list)
        if self.else_list is not None:
            s += "{{else}}%s" % self.else_list
        return s + "{{end}}"


class TemplateNode(Node):
    __slots__ = ("name", "pipe", "line")

    def __init__(self, pos, line, name, pipe):
        self.pos = pos
        self.line = line
        self.name = name
        self.pipe = pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template %s}}" % go_quote(self.name)
        return "{{template %s %s}}" % (go_quote(self.name), self.pipe)


class BreakNode(Node):
    __slots__ = ("cont",)

    def __init__(self, pos, cont):
        self.pos = pos
        self.cont = cont

    def __str__(self):
        return "{{continue}}" if self.cont else "{{break}}"


def is_empty_tree(lst) -> bool:
    """Go's IsEmptyTree: only blank text, so it may be redefined."""
    for n in lst.nodes:
        if isinstance(n, TextNode):
            if n.text.strip(SPACE):
                return False
        else:
            return False
    return True
