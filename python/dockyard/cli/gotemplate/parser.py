"""The template parser (Go's text/template/parse parse.go): tokens become a
node tree; {{define}}d and {{block}} templates are collected by name."""

from __future__ import annotations

from .errors import ParseError
from .lexer import (
    K_BLOCK,
    K_BREAK,
    K_CONTINUE,
    K_DEFINE,
    K_ELSE,
    K_END,
    K_IF,
    K_RANGE,
    K_TEMPLATE,
    K_WITH,
    T_ASSIGN,
    T_BOOL,
    T_CHAR,
    T_CHARCONST,
    T_DECLARE,
    T_DOT,
    T_EOF,
    T_ERROR,
    T_FIELD,
    T_IDENT,
    T_LDELIM,
    T_LPAREN,
    T_NIL,
    T_NUMBER,
    T_PIPE,
    T_RAWSTRING,
    T_RDELIM,
    T_RPAREN,
    T_SPACE,
    T_STRING,
    T_TEXT,
    T_VAR,
    lex,
)
from .nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    DotNode,
    ElseNode,
    EndNode,
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
    is_empty_tree,
)
from .strconv import go_quote, go_unquote, parse_go_number


class Parser:
    """One parse of a template text; {{define}}d trees go into `trees`."""

    def __init__(self, text, name, funcs, trees):
        self.text = text
        self.name = name
        self.funcs = funcs
        self.trees = trees  # name -> ListNode
        self.toks = lex(text)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.last_line = 1

    # -- token helpers
    def next(self):
        toks = self.toks
        t = toks[self.i] if self.i < len(toks) else toks[-1]
        self.i += 1
        self.last_line = t.line
        return t

    def backup(self, k=1):
        self.i -= k

    def peek(self):
        toks = self.toks
        return toks[self.i] if self.i < len(toks) else toks[-1]

    def next_non_space(self):
        t = self.next()
        while t.typ == T_SPACE:
            t = self.next()
        return t

    def peek_non_space(self):
        t = self.next_non_space()
        self.backup()
        return t

    def errorf(self, msg):
        raise ParseError("template: %s:%d: %s" % (self.name, self.last_line, msg))

    def unexpected(self, tok, context):
        if tok.typ == T_ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = " in action started at %s:%d" % (self.name, self.action_line)
                if tok.val.startswith(" action") or tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.last_line = tok.line
            self.errorf(tok.val + extra)
        self.errorf("unexpected %s in %s" % (tok, context))

    def expect(self, typ, context):
        t = self.next_non_space()
        if t.typ != typ:
            self.unexpected(t, context)
        return t

    # -- grammar
    def parse(self):
        root = ListNode(self.peek().pos)
        while self.peek().typ != T_EOF:
            if self.peek().typ == T_LDELIM:
                delim_i = self.i
                self.next()
                if self.next_non_space().typ == K_DEFINE:
                    self.parse_definition()
                    continue
                self.i = delim_i
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf("unexpected %s" % n)
            root.nodes.append(n)
        return root

    def parse_definition(self):
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (T_STRING, T_RAWSTRING):
            self.unexpected(tok, context)
        name = self.unquote(tok)
        self.expect(T_RDELIM, context)
        saved_vars = self.vars
        self.vars = ["$"]
        lst, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        self.add_tree(name, lst)

    def add_tree(self, name, lst):
        old = self.trees.get(name)
        if old is None or is_empty_tree(old):
            self.trees[name] = lst
        elif not is_empty_tree(lst):
            self.errorf("template: multiple definition of template %s" % go_quote(name))

    def item_list(self):
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != T_EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        tok = self.next_non_space()
        if tok.typ == T_TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.typ == T_LDELIM:
            saved = self.action_line
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = saved
        self.unexpected(tok, "input")

    def action(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == K_BLOCK:
            return self.block_control()
        if typ in (K_BREAK, K_CONTINUE):
            return self.break_control(tok)
        if typ == K_ELSE:
            return self.else_control()
        if typ == K_END:
            return EndNode(self.expect(T_RDELIM, "end").pos)
        if typ == K_IF:
            return self.control("if")
        if typ == K_RANGE:
            return self.control("range")
        if typ == K_TEMPLATE:
            return self.template_control()
        if typ == K_WITH:
            return self.control("with")
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command", T_RDELIM))

    def break_control(self, tok):
        cont = tok.typ == K_CONTINUE
        word = "{{continue}}" if cont else "{{break}}"
        t = self.next_non_space()
        if t.typ != T_RDELIM:
            self.unexpected(t, word)
        if self.range_depth == 0:
            self.errorf("%s outside {{range}}" % word)
        return BreakNode(tok.pos, cont)

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in (K_IF, K_WITH):
            # "{{else if ...": rewritten to {{else}}{{if ...}} by control()
            return ElseNode(peek.pos)
        tok = self.expect(T_RDELIM, "else")
        return ElseNode(tok.pos)

    def control(self, context):
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(context, T_RDELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                p = self.peek()
                if (context == "if" and p.typ == K_IF) or (context == "with" and p.typ == K_WITH):
                    self.next()
                    else_list = ListNode(nxt.pos)
                    else_list.nodes.append(self.control(context))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf("expected end; found %s" % nxt)
            return BranchNode(context, pipe, lst, else_list)
        finally:
            del self.vars[nvars:]

    def template_control(self):
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != T_RDELIM:
            self.backup()
            pipe = self.pipeline(context, T_RDELIM)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_name(self, tok, context):
        if tok.typ in (T_STRING, T_RAWSTRING):
            return self.unquote(tok)
        self.unexpected(tok, context)

    def block_control(self):
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, T_RDELIM)
        saved_vars, saved_depth = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        lst, end = self.item_list()
        self.vars, self.range_depth = saved_vars, saved_depth
        if not isinstance(end, EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        self.add_tree(name, lst)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def pipeline(self, context, end):
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos, tok.line)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != T_VAR:
                break
            start = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (T_ASSIGN, T_DECLARE):
                pipe.is_assign = nxt.typ == T_ASSIGN
                self.next_non_space()
                pipe.decl.append(VarNode(v.pos, [v.val]))
                self.vars.append(v.val)
            elif nxt.typ == T_CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VarNode(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T_VAR, T_RDELIM, T_RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf("too many declarations in %s" % context)
            else:
                self.i = start
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                if not pipe.cmds:
                    self.errorf("missing value for %s" % context)
                for k, c in enumerate(pipe.cmds[1:]):
                    if isinstance(
                        c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)
                    ):
                        self.errorf("non executable command in pipeline stage %d" % (k + 2))
                return pipe
            if tok.typ in (
                T_BOOL,
                T_CHARCONST,
                T_DOT,
                T_FIELD,
                T_IDENT,
                T_NUMBER,
                T_NIL,
                T_RAWSTRING,
                T_STRING,
                T_VAR,
                T_LPAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def command(self):
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            tok = self.next()
            if tok.typ == T_SPACE:
                continue
            if tok.typ in (T_RDELIM, T_RPAREN):
                self.backup()
            elif tok.typ == T_PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T_FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == T_FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, VarNode):
                return VarNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf("unexpected . after term %s" % go_quote(str(node)))
            return chain
        return node

    def term(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == T_IDENT:
            if tok.val not in self.funcs:
                self.errorf("function %s not defined" % go_quote(tok.val))
            return IdentNode(tok.pos, tok.val)
        if typ == T_DOT:
            return DotNode(tok.pos)
        if typ == T_NIL:
            return NilNode(tok.pos)
        if typ == T_VAR:
            if tok.val not in self.vars:
                self.errorf("undefined variable %s" % go_quote(tok.val))
            return VarNode(tok.pos, [tok.val])
        if typ == T_FIELD:
            return FieldNode(tok.pos, [tok.val[1:]])
        if typ == T_BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if typ in (T_NUMBER, T_CHARCONST):
            return NumberNode(tok.pos, self.number(tok), tok.val)
        if typ == T_LPAREN:
            return self.pipeline("parenthesized pipeline", T_RPAREN)
        if typ in (T_STRING, T_RAWSTRING):
            return StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    def unquote(self, tok):
        s = tok.val
        if tok.typ == T_RAWSTRING:
            return s[1:-1]
        try:
            return go_unquote(s)
        except ValueError:
            self.errorf("invalid syntax")

    def number(self, tok):
        text = tok.val
        if tok.typ == T_CHARCONST:
            try:
                r = go_unquote('"' + text[1:-1] + '"') if text[1:-1] != '"' else '"'
            except ValueError:
                r = ""
            if len(r) != 1:
                self.errorf("malformed character constant: %s" % text)
            return ord(r)
        v = parse_go_number(text)
        if isinstance(v, int) and not -(2**63) <= v < 2**64:
            self.errorf("integer overflow: %s" % go_quote(text))
        if v is None:
            self.errorf("illegal number syntax: %s" % go_quote(text))
        return v
