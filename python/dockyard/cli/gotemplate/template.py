"""`Template`: parse once, execute many times; `parse()` and `render()`."""

from __future__ import annotations

from .errors import ExecError, ParseError, TemplateError
from .exec import State
from .funcs import BUILTINS, user_funcs
from .nodes import is_empty_tree
from .parser import Parser
from .strconv import go_quote
from .values import MISSING


class Template:
    """A parsed template (with its {{define}}d associates)."""

    __slots__ = ("text", "name", "trees", "root", "funcs", "missingkey")

    def __init__(self, text, *, name="", funcs=None, missingkey="default"):
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise ValueError("unrecognized missingkey option %r" % missingkey)
        self.text = text
        self.name = name
        self.missingkey = missingkey
        allf = dict(BUILTINS)
        allf.update(user_funcs(funcs))
        self.funcs = allf
        self.trees = {}
        p = Parser(text, name, allf, self.trees)
        try:
            root = p.parse()
        except ParseError as e:
            raise TemplateError(str(e), "parse") from None
        except RecursionError:
            raise TemplateError("template: %s:1: max nesting depth exceeded" % name, "parse") from None
        if name in self.trees and not is_empty_tree(self.trees[name]):
            if not is_empty_tree(root):
                raise TemplateError(
                    "template: %s:1: template: multiple definition of template %s"
                    % (name, go_quote(name)),
                    "parse",
                )
        else:
            self.trees[name] = root
        self.root = self.trees[name]

    def execute(self, data, *, funcs=None) -> str:
        """Execute; raises TemplateError(kind="exec") with .partial output."""
        allf = self.funcs
        if funcs:
            allf = dict(allf)
            allf.update(funcs)
        st = State(self, allf)
        dot = MISSING if data is None else data
        st.vars.append(["$", dot])
        try:
            st.walk(dot, self.root)
        except ExecError as e:
            raise TemplateError(str(e), "exec", "".join(st.out)) from None
        except RecursionError:
            raise TemplateError(
                "template: %s: exceeded maximum template depth" % self.name, "exec", "".join(st.out)
            ) from None
        return "".join(st.out)


def parse(text: str, *, name: str = "", funcs=None, missingkey: str = "default") -> Template:
    return Template(text, name=name, funcs=funcs, missingkey=missingkey)


def render(text: str, data, *, name: str = "", funcs=None, missingkey: str = "default") -> str:
    return Template(text, name=name, funcs=funcs, missingkey=missingkey).execute(data)
