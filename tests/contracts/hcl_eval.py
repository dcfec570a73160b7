"""Evaluate Terraform expressions offline, to see the request bodies Terraform would send.

The checks in tests/infra read infra/terraform as text; a request contract needs values: the
dashboard is `jsonencode()` of a for-expression over locals, an alert's query interpolates
locals and variables. Terraform itself cannot evaluate them here (`terraform console` needs the
providers, which are not downloadable offline), so this evaluates the parse tree python-hcl2
builds (`hcl2.parses_to_tree`, the grammar of python-hcl2 8.1.4, pinned in requirements-dev.txt)
with Terraform's semantics for the constructs and functions the configuration uses.

What Terraform knows only after apply (a resource's `id`, a service account's `email`) evaluates
to an `Unknown`, a string naming the reference, so the body keeps its shape and type. An
expression or function this module does not implement raises `EvalError`: a contract is never
checked against a guess.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import Any

import hcl2
from lark import Token, Tree

from tests.contracts.hcl_functions import BINARY, FUNCTIONS, as_text, normalize


class EvalError(Exception):
    """An expression this evaluator cannot evaluate faithfully."""


class Unknown(str):
    """A value known only after apply, e.g. `(known after apply: google_pubsub_topic.ingest.id)`."""


class Namespace:
    """A root name (`var`, `local`, a resource type, a resource) whose attributes are looked up lazily."""

    def __init__(self, name: str, lookup: Callable[[str], Any]):
        self.name = name
        self.lookup = lookup

    def attr(self, name: str) -> Any:
        return self.lookup(name)


Scope = dict[str, Any]
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def parse_expression(text: str) -> Tree:
    """The parse tree of one HCL expression."""
    attribute = hcl2.parses_to_tree(f"x = {text}\n").children[0].children[0]
    return attribute.children[-1]


def _children(node: Tree) -> list[Any]:
    """A node's meaningful children: no newlines, no punctuation tokens."""
    out = []
    for child in node.children:
        if isinstance(child, Tree) and child.data == "new_line_or_comment":
            continue
        if isinstance(child, Token) and child.type not in {"INT_LITERAL", "FLOAT_LITERAL", "NAME", "STRING_CHARS"}:
            continue
        out.append(child)
    return out


def _tokens(node: Tree) -> list[str]:
    return [str(c) for c in node.children if isinstance(c, Token)]


class Evaluator:
    def __init__(self, roots: Callable[[str], Any], functions: dict[str, Callable[..., Any]] | None = None):
        self.roots = roots  # a root identifier (var, local, a resource type) -> Namespace or value
        self.functions = {**FUNCTIONS, **(functions or {})}

    def eval(self, node: Any, scope: Scope | None = None) -> Any:
        scope = scope or {}
        if isinstance(node, Token):
            return self._token(node)
        handler = getattr(self, f"_{node.data}", None)
        if handler is None:
            raise EvalError(f"cannot evaluate HCL {node.data}")
        return handler(node, scope)

    def _token(self, token: Token) -> Any:
        if token.type == "INT_LITERAL":
            return int(token)
        if token.type == "FLOAT_LITERAL":
            return normalize(float(token))
        raise EvalError(f"unexpected token {token!r}")

    def _expr_term(self, node: Tree, scope: Scope) -> Any:
        (inner,) = _children(node)
        return self.eval(inner, scope)

    def _int_lit(self, node: Tree, scope: Scope) -> Any:
        return int(node.children[0])

    def _float_lit(self, node: Tree, scope: Scope) -> Any:
        return normalize(float(node.children[0]))

    def _literal_value(self, node: Tree, scope: Scope) -> Any:
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _identifier(self, node: Tree, scope: Scope) -> Any:
        name = str(node.children[0])
        return scope[name] if name in scope else self.roots(name)

    def _string(self, node: Tree, scope: Scope) -> str:
        parts = []
        for part in node.children:
            if isinstance(part, Tree) and part.data == "string_part":
                (piece,) = part.children
                if isinstance(piece, Tree) and piece.data == "interpolation":
                    parts.append(as_text(self.eval(_children(piece)[0], scope)))
                elif isinstance(piece, Token) and piece.type == "ESCAPED_INTERPOLATION":
                    parts.append(str(piece)[1:])
                elif isinstance(piece, Token) and piece.type == "STRING_CHARS":
                    parts.append(_unescape(str(piece)))
                else:
                    raise EvalError(f"template directives are not evaluated: {piece!r}")
        return "".join(parts)

    def _heredoc_template_trim(self, node: Tree, scope: Scope) -> str:
        body = str(node.children[0]).split("\n", 1)[1].rsplit("\n", 2)[0] + "\n"
        return self._template(textwrap.dedent(body), scope)

    def _heredoc_template(self, node: Tree, scope: Scope) -> str:
        return self._template(str(node.children[0]).split("\n", 1)[1].rsplit("\n", 2)[0] + "\n", scope)

    def _template(self, text: str, scope: Scope) -> str:
        """A heredoc's text with its `${...}` interpolations evaluated."""
        out, i = [], 0
        while (start := text.find("${", i)) >= 0:
            if start > 0 and text[start - 1] == "$":
                out.append(text[i : start - 1] + "${")
                i = start + 2
                continue
            depth, end = 0, start + 2
            for end in range(start + 2, len(text)):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth < 0:
                    break
            out.append(text[i:start] + as_text(self.eval(parse_expression(text[start + 2 : end]), scope)))
            i = end + 1
        if "%{" in text:
            raise EvalError("template directives are not evaluated")
        return "".join(out) + text[i:]

    def _tuple(self, node: Tree, scope: Scope) -> list[Any]:
        return [self.eval(c, scope) for c in _children(node)]

    def _object(self, node: Tree, scope: Scope) -> dict[str, Any]:
        out = {}
        for elem in _children(node):
            key_node, value_node = _children(elem)
            key_expr = _children(key_node)[0]
            bare = _children(key_expr)[0] if isinstance(key_expr, Tree) and key_expr.data == "expr_term" else None
            if isinstance(bare, Tree) and bare.data == "identifier":
                key = str(bare.children[0])
            else:
                key = as_text(self.eval(key_expr, scope))
            out[key] = self.eval(value_node, scope)
        return out

    def _get_attr_expr_term(self, node: Tree, scope: Scope) -> Any:
        target, get_attr = _children(node)
        return _attr(self.eval(target, scope), str(_children(get_attr)[0].children[0]))

    def _index_expr_term(self, node: Tree, scope: Scope) -> Any:
        target, index = _children(node)
        key = self.eval(_children(index)[0], scope) if index.data == "braces_index" else int(index.children[-1])
        value = self.eval(target, scope)
        if isinstance(value, Namespace):
            return value.attr(str(key))
        try:
            return value[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise EvalError(f"cannot index {value!r} with {key!r}") from exc

    def _full_splat_expr_term(self, node: Tree, scope: Scope) -> Any:
        target, splat = _children(node)
        items = self.eval(target, scope)
        items = items.attr("[*]") if isinstance(items, Namespace) else items
        items = [] if items is None else items if isinstance(items, list) else [items]
        for step in _children(splat):
            if step.data != "get_attr":
                raise EvalError("only attribute steps are evaluated after [*]")
            items = [_attr(item, str(_children(step)[0].children[0])) for item in items]
        return items

    def _function_call(self, node: Tree, scope: Scope) -> Any:
        parts = _children(node)
        name = str(parts[0].children[0])
        args_node = parts[1] if len(parts) > 1 else None
        arg_nodes = _children(args_node) if args_node is not None else []
        if name in ("try", "can"):  # lazy: the first argument that evaluates
            for arg in arg_nodes:
                try:
                    value = self.eval(arg, scope)
                    return True if name == "can" else value
                except (EvalError, ValueError, TypeError, KeyError):
                    continue
            if name == "can":
                return False
            raise EvalError("no argument of try() evaluated")
        if name not in self.functions:
            raise EvalError(f"function {name}() is not implemented in tests/contracts/hcl_eval.py")
        args = [self.eval(a, scope) for a in arg_nodes]
        if args_node is not None and "..." in _tokens(args_node):
            args = args[:-1] + list(args[-1])
        return normalize(self.functions[name](*args))

    def _conditional(self, node: Tree, scope: Scope) -> Any:
        condition, yes, no = _children(node)
        return self.eval(yes if self.eval(condition, scope) else no, scope)

    def _unary_op(self, node: Tree, scope: Scope) -> Any:
        operator, operand = str(node.children[0]), self.eval(node.children[-1], scope)
        return -operand if operator == "-" else not operand

    def _binary_op(self, node: Tree, scope: Scope) -> Any:
        left_node, term = _children(node)
        operator_node, right_node = _children(term)
        operator = str(operator_node.children[0])
        left = self.eval(left_node, scope)
        if operator in ("&&", "||"):
            return (
                (left and self.eval(right_node, scope)) if operator == "&&" else (left or self.eval(right_node, scope))
            )
        return normalize(BINARY[operator](left, self.eval(right_node, scope)))

    def _for_tuple_expr(self, node: Tree, scope: Scope) -> list[Any]:
        intro, *rest = _children(node)
        body, cond = rest[0], rest[1] if len(rest) > 1 else None
        return [self.eval(body, s) for s in self._iterations(intro, cond, scope)]

    def _for_object_expr(self, node: Tree, scope: Scope) -> dict[str, Any]:
        intro, key_node, value_node, *rest = _children(node)
        if "..." in _tokens(node):
            raise EvalError("grouping for-expressions (...) are not evaluated")
        cond = rest[0] if rest else None
        return {as_text(self.eval(key_node, s)): self.eval(value_node, s) for s in self._iterations(intro, cond, scope)}

    def _iterations(self, intro: Tree, cond: Tree | None, scope: Scope) -> list[Scope]:
        *names, collection_node = _children(intro)
        collection = self.eval(collection_node, scope)
        pairs = collection.items() if isinstance(collection, dict) else enumerate(collection)
        out = []
        for key, value in pairs:
            names_ = [str(n.children[0]) for n in names]
            inner = {
                **scope,
                **(dict(zip(names_, (key, value), strict=True)) if len(names_) == 2 else {names_[0]: value}),
            }
            if cond is None or self.eval(_children(cond)[0], inner):
                out.append(inner)
        return out


def _attr(value: Any, name: str) -> Any:
    if isinstance(value, Namespace):
        return value.attr(name)
    if isinstance(value, dict) and name in value:
        return value[name]
    if isinstance(value, Unknown):
        return Unknown(f"{value}.{name}")
    raise EvalError(f"no attribute {name!r} in {value!r}")


def _unescape(chars: str) -> str:
    return re.sub(
        r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 5 else _ESCAPES[m[1]], chars
    )
