"""The evaluator (Go's text/template exec.go): `State` walks a parse tree over
the data and collects the output."""

from __future__ import annotations

from .errors import ExecError, FuncError
from .fmt import go_sprint, sorted_keys, type_name
from .funcs import fn_call, is_true
from .nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    DotNode,
    FieldNode,
    IdentNode,
    ListNode,
    NilNode,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VarNode,
)
from .strconv import go_quote
from .values import MISSING, NOFINAL


class _Break(Exception):
    """{{break}}: unwinds to the enclosing range loop."""


class _Continue(Exception):
    """{{continue}}: unwinds to the next iteration of the enclosing range."""


class State:
    """One execution: the output so far, the variable stack, the node for errors."""

    __slots__ = ("tmpl", "out", "vars", "node", "exec_name", "depth", "funcs", "no_invoke")

    def __init__(self, tmpl, funcs):
        self.tmpl = tmpl
        self.out = []
        self.vars = []
        self.node = None
        self.exec_name = tmpl.name
        self.depth = 0
        self.funcs = funcs
        self.no_invoke = False

    def at(self, node):
        self.node = node

    def errorf(self, msg):
        node = self.node
        text = self.tmpl.text
        if node is None:
            raise ExecError("template: %s: %s" % (self.exec_name, msg))
        pos = node.pos
        before = text[:pos]
        nl = before.rfind("\n")
        col = pos if nl < 0 else pos - (nl + 1)
        line = 1 + before.count("\n")
        raise ExecError(
            "template: %s:%d:%d: executing %s at <%s>: %s"
            % (self.tmpl.name, line, col, go_quote(self.exec_name), _ctx_str(node), msg)
        )

    # -- variables
    def push(self, name, value):
        self.vars.append([name, value])

    def set_var(self, name, value):
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        self.errorf("undefined variable: %s" % name)

    def var_value(self, name):
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        self.errorf("undefined variable: %s" % name)

    # -- walking
    def walk(self, dot, node):
        self.at(node)
        t = type(node)
        if t is TextNode:
            self.out.append(node.text)
        elif t is ActionNode:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif t is ListNode:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is BranchNode:
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                val = self.eval_pipeline(dot, node.pipe)
                if is_true(val):
                    self.walk(val if node.kind == "with" else dot, node.list)
                elif node.else_list is not None:
                    self.walk(dot, node.else_list)
                del self.vars[mark:]
        elif t is TemplateNode:
            self.walk_template(dot, node)
        elif t is BreakNode:
            raise _Continue() if node.cont else _Break()
        else:
            self.errorf("unknown node: %s" % node)

    def print_value(self, node, val):
        self.at(node)
        if val is MISSING or val is None:
            self.out.append("<no value>")
        elif type(val) is str:
            self.out.append(val)
        else:
            self.out.append(go_sprint(val))

    def walk_range(self, dot, r):
        self.at(r)
        mark0 = len(self.vars)
        val = self.eval_pipeline(dot, r.pipe)
        mark = len(self.vars)
        decl = r.pipe.decl
        items = None
        if val is None or val is MISSING:
            items = ()
        elif isinstance(val, dict):
            items = [(k, val[k]) for k in sorted_keys(val)]
        elif isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            if val < 0:
                val = 0
            items = [(i, i) for i in range(val)]
            if len(decl) > 1:
                self.errorf("can't use %s to iterate over more than one variable" % go_sprint(val))
        else:
            self.errorf("range can't iterate over %s" % go_sprint(val))
        try:
            for index, elem in items:
                if decl:
                    if r.pipe.is_assign:
                        if len(decl) > 1:
                            self.set_var(decl[0].ident[0], index)
                        else:
                            self.set_var(decl[0].ident[0], elem)
                    else:
                        self.vars[-1][1] = elem
                if len(decl) > 1:
                    if r.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.vars[-2][1] = index
                try:
                    self.walk(elem, r.list)
                except _Continue:
                    pass
                finally:
                    del self.vars[mark:]
        except _Break:
            pass
        if not items and r.else_list is not None:
            self.walk(dot, r.else_list)
        del self.vars[mark0:]

    def walk_template(self, dot, t):
        self.at(t)
        tree = self.tmpl.trees.get(t.name)
        if tree is None:
            self.errorf("template %s not defined" % go_quote(t.name))
        if self.depth >= 100000:
            self.errorf("exceeded maximum template depth (100000)")
        dot = self.eval_pipeline(dot, t.pipe) if t.pipe is not None else MISSING
        saved = (self.vars, self.exec_name)
        self.vars = [["$", dot]]
        self.exec_name = t.name
        self.depth += 1
        try:
            self.walk(dot, tree)
        finally:
            self.depth -= 1
            self.vars, self.exec_name = saved

    # -- evaluation
    def eval_pipeline(self, dot, pipe):
        if pipe is None:
            return MISSING
        self.at(pipe)
        value = NOFINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:
                value = MISSING  # nil interface{} becomes the invalid value
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args, final):
        if len(args) > 1 or final is not NOFINAL:
            self.errorf("can't give argument to non-function %s" % args[0])

    def eval_command(self, dot, cmd, final):
        first = cmd.args[0]
        t = type(first)
        if t is FieldNode:
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if t is ChainNode:
            return self.eval_chain(dot, first, cmd.args, final)
        if t is IdentNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if t is PipeNode:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is VarNode:
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if t is BoolNode:
            return first.value
        if t is DotNode:
            return dot
        if t is NilNode:
            self.errorf("nil is not a command")
        if t is NumberNode:
            return first.value
        if t is StringNode:
            return first.value
        self.errorf("can't evaluate command %s" % first)

    def eval_chain(self, dot, chain, args, final):
        self.at(chain)
        if isinstance(chain.node, NilNode):
            self.errorf("indirection through explicit nil in %s" % chain)
        pipe = self.eval_arg(dot, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot, var, args, final):
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, ident, args, final):
        n = len(ident)
        iface = False
        for k in range(n - 1):
            receiver, iface = self.eval_field(dot, ident[k], node, None, NOFINAL, receiver, iface)
        return self.eval_field(dot, ident[n - 1], node, args, final, receiver, iface)[0]

    def eval_field(self, dot, name, node, args, final, receiver, iface):
        """Returns (value, came_from_container)."""
        if receiver is MISSING:
            if self.tmpl.missingkey == "error":
                self.errorf("nil data; no entry for key %s" % go_quote(name))
            return MISSING, False
        has_args = (args is not None and len(args) > 1) or final is not NOFINAL
        if receiver is None:
            self.errorf("nil pointer evaluating interface {}.%s" % name)
        if isinstance(receiver, dict):
            if name in receiver:
                val = receiver[name]
                if callable(val) and not isinstance(val, type) and not self.no_invoke:
                    return self.eval_call(dot, val, name, node, args, final), False
                if has_args:
                    self.errorf("%s is not a method but has arguments" % name)
                return val, True
            if has_args:
                self.errorf("%s is not a method but has arguments" % name)
            mk = self.tmpl.missingkey
            if mk == "error":
                self.errorf("map has no entry for key %s" % go_quote(name))
            if mk == "zero":
                return None, True
            return MISSING, False
        if isinstance(receiver, HeaderContext):
            return receiver.header(name), False
        if not isinstance(receiver, (str, int, float, list, tuple, bytes)):
            try:
                val = getattr(receiver, name)
            except AttributeError:
                pass
            except Exception as e:  # property raising
                self.errorf("error calling %s: %s" % (name, e))
            else:
                if callable(val) and not isinstance(val, type):
                    return self.eval_call(dot, val, name, node, args, final), False
                if has_args:
                    self.errorf("%s has arguments but cannot be invoked as function" % name)
                return val, False
        tname = "interface {}" if iface else type_name(receiver)
        self.errorf("can't evaluate field %s in type %s" % (name, tname))

    def eval_function(self, dot, node, cmd, args, final):
        self.at(node)
        name = node.name
        entry = self.funcs.get(name)
        if entry is None:
            self.errorf("%s is not a defined function" % go_quote(name))
        fn, lo, hi = entry
        nargs = len(args) - 1 + (0 if final is NOFINAL else 1)
        if hi is not None and lo == hi and nargs != lo:
            self.errorf("wrong number of args for %s: want %d got %d" % (name, lo, nargs))
        if nargs < lo:
            self.errorf("wrong number of args for %s: want at least %d got %d" % (name, lo, nargs))
        if hi is not None and nargs > hi:
            self.errorf("wrong number of args for %s: want %d got %d" % (name, hi, nargs))
        if fn is None:  # and / or: short-circuit
            want = name == "or"
            v = None
            for a in args[1:]:
                v = self.eval_arg(dot, a)
                if is_true(v) == want:
                    return v
            if final is not NOFINAL:
                v = final
            return v
        return self.eval_call(dot, fn, name, cmd, args, final)

    def eval_call(self, dot, fn, name, node, args, final):
        if fn is fn_call and args and len(args) > 1:
            # {{call .F x}}: a function stored in a dict is passed, not invoked
            self.no_invoke = True
            try:
                first = self.eval_arg(dot, args[1])
            finally:
                self.no_invoke = False
            argv = [first] + [self.eval_arg(dot, a) for a in args[2:]]
        else:
            argv = [self.eval_arg(dot, a) for a in (args[1:] if args else ())]
        if final is not NOFINAL:
            argv.append(final)
        argv = [None if a is MISSING else a for a in argv]
        self.at(node)
        try:
            result = fn(*argv)
        except FuncError as e:
            self.errorf("error calling %s: %s" % (name, e))
        except (ExecError, _Break, _Continue):
            raise
        except TypeError as e:
            self.errorf("error calling %s: %s" % (name, e))
        except Exception as e:
            self.errorf("error calling %s: %s" % (name, e))
        return result

    def eval_arg(self, dot, n):
        self.at(n)
        t = type(n)
        if t is DotNode:
            return dot
        if t is NilNode:
            return None
        if t is FieldNode:
            return self.eval_field_chain(dot, dot, n, n.ident, [n], NOFINAL)
        if t is VarNode:
            return self.eval_variable(dot, n, [n], NOFINAL)
        if t is PipeNode:
            return self.eval_pipeline(dot, n)
        if t is IdentNode:
            return self.eval_function(dot, n, n, [n], NOFINAL)
        if t is ChainNode:
            return self.eval_chain(dot, n, [n], NOFINAL)
        if t is BoolNode or t is NumberNode or t is StringNode:
            return n.value
        self.errorf("can't handle %s for arg" % n)


def _ctx_str(node) -> str:
    s = str(node)
    if len(s) > 100:
        s = s[:100] + "..."
    return s


class HeaderContext:
    """The value a table header is rendered from (docker's FullHeader())."""

    __slots__ = ("headers",)

    def __init__(self, headers):
        self.headers = headers or {}

    def header(self, name):
        h = self.headers.get(name)
        return name.upper() if h is None else h


# a table header's `{{printf "%T" .}}` prints this class's name and `{{json .}}`
# its repr (json is the identity there): keep what they printed before the split
HeaderContext.__name__ = HeaderContext.__qualname__ = "_HeaderContext"
HeaderContext.__module__ = "dockyard.cli.gotemplate"
