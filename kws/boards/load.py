"""Board YAML -> `Board`, with every problem as one line: `boards/x.yaml:LINE key: problem`.

The YAML is composed with PyYAML's SafeLoader (no Python tags, ever) into nodes that carry
line numbers; this module builds the plain data itself so it can reject duplicate keys and
remember the line of every key. Pydantic then validates, and the first error's key path is
mapped back to its line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from kws.boards.schema import Board, BoardRuleError
from kws.errors import KwsError

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAX_DEPTH = 20
MAX_NODES = 10_000  # aliases can repeat a node many times ("billion laughs")

Loc = tuple[Any, ...]


def boards_dir() -> Path:
    from kws import boards_dir as _boards_dir

    return _boards_dir()


# ---------------------------------------------------------------------------------------------
# YAML nodes -> data + line map


class _BoardFileError(Exception):
    """Internal: a problem found while building the data, with its line."""

    def __init__(self, line: int, text: str):
        self.line = line
        self.text = text
        super().__init__(text)


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: yaml.SafeLoader,
           depth: int = 0) -> Any:
    """Plain data from a composed node; records the 1-based line of every key in `lines`."""
    if depth > MAX_DEPTH or len(lines) > MAX_NODES:
        raise _BoardFileError(node.start_mark.line + 1,
                              f"{_dotted(loc[:1]) or 'top level'}: nested too deeply or too "
                              "large")
    if isinstance(node, yaml.MappingNode):
        if node.tag != MAP_TAG:
            raise _BoardFileError(node.start_mark.line + 1,
                                  f"{_dotted(loc) or 'top level'}: YAML tag "
                                  f"{_tag(node.tag)} is not allowed")
        data: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _BoardFileError(key_line, f"{_dotted(loc) or 'top level'}: merge keys "
                                      "(<<) are not supported; write the keys out")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _BoardFileError(key_line, f"{_dotted(loc) or 'top level'}: keys must be "
                                      "plain words")
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                raise _BoardFileError(key_line, f"{_dotted((*loc, key))}: keys must be words, "
                                      f"not {type(key).__name__}")
            child = (*loc, key)
            if key in data:
                raise _BoardFileError(key_line, f"{_dotted(child)}: duplicate key (first at "
                                      f"line {lines[child]})")
            lines[child] = key_line
            data[key] = _build(value_node, child, lines, loader, depth + 1)
        return data
    if isinstance(node, yaml.SequenceNode):
        if node.tag != SEQ_TAG:
            raise _BoardFileError(node.start_mark.line + 1,
                                  f"{_dotted(loc)}: YAML tag {_tag(node.tag)} is not allowed")
        items = []
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            items.append(_build(item, (*loc, index), lines, loader, depth + 1))
        return items
    try:
        return loader.construct_object(node)  # scalars: SafeConstructor rules, no Python tags
    except yaml.constructor.ConstructorError as exc:
        raise _BoardFileError(node.start_mark.line + 1,
                              f"{_dotted(loc) or 'top level'}: {_tag(exc.problem or 'bad value')}"
                              ) from None


def _tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    """`LINE YAML syntax: problem` at the problem's line, naming where the context began."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    problem = exc.problem or exc.context or "cannot parse"
    if exc.problem and exc.context:
        if problem.startswith("but "):
            problem = f"{exc.context}, {problem}"
        elif exc.context_mark is not None and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        else:
            problem += f" ({exc.context})"
    return f"{line} YAML syntax: {problem}"


def _compose(text: str, shown: str) -> tuple[Any, dict[Loc, int]]:
    try:
        # the reader checks the characters as soon as it is built (control characters)
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise KwsError(f"{shown}:1 YAML: {str(exc).splitlines()[0]}") from None
    try:
        try:
            root = loader.get_single_node()
            if root is None:
                raise KwsError(f"{shown}:1 empty file; expected board settings (name, core, "
                               "clock_hz, ...)")
            lines: dict[Loc, int] = {(): root.start_mark.line + 1}
            data = _build(root, (), lines, loader)
        except yaml.MarkedYAMLError as exc:
            raise KwsError(f"{shown}:{_syntax_message(exc)}") from None
        except yaml.YAMLError as exc:
            raise KwsError(f"{shown}:1 YAML: {str(exc).splitlines()[0]}") from None
        except _BoardFileError as exc:
            raise KwsError(f"{shown}:{exc.line} {exc.text}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else _shown_value(data)
        raise KwsError(f"{shown}:{lines[()]} top level: expected a mapping of board settings, "
                       f"got {kind}")
    return data, lines


# ---------------------------------------------------------------------------------------------
# Pydantic errors -> one line


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` (() = Board)."""
    model: type[BaseModel] = Board
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        annotation = field.annotation
        candidates = get_args(annotation) if get_origin(annotation) is not None else (annotation,)
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                   None)
        if sub is None:
            return None
        model = sub
    return model


def _yaml_keys(loc: Loc) -> list[str]:
    model = _model_at(loc)
    if model is None:
        return []
    keys = list(model.model_fields)
    return [k for k in keys if k != "id"] if model is Board else keys


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _shown_value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    elif value is None:
        text = "nothing"
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _reason(err: dict) -> str:
    """A short, plain-words version of one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = f" (got {_shown_value(err.get('input'))})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer" + got
    if kind in ("float_type", "float_parsing"):
        return "must be a number" + got
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false" + got
    if kind == "string_type":
        return "must be text" + got
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping of keys" + got
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}" + got
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}" + got
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}" + got
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}" + got
    if kind == "literal_error":
        value = err.get("input")
        hint = ""
        if isinstance(value, str):
            choices = [c.strip(" '") for c in str(ctx.get("expected", "")).replace(" or ", ", ")
                       .split(",")]
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
        return f"must be one of {ctx.get('expected')}" + got + hint
    if kind == "value_error":
        error = ctx.get("error")
        return str(error) if error is not None else err["msg"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return err["msg"]
    return err["msg"] + got


def _message(err: dict, lines: dict[Loc, int]) -> tuple[int, str]:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "missing":
        parent, key = loc[:-1], loc[-1]
        line = _line_of(parent, lines)
        where = f"{_dotted(parent)}: " if parent else ""
        return line, f"{where}missing key {key}"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _yaml_keys(loc[:-1]), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        if loc == ("id",):
            return _line_of(loc, lines), "id: not a board setting; the id is the file name"
        return _line_of(loc, lines), f"{_dotted(loc)}: unknown key{hint}"
    error = (err.get("ctx") or {}).get("error")
    if kind == "value_error" and isinstance(error, BoardRuleError):
        loc = (*loc, *error.loc)
        return _line_of(loc, lines), f"{_dotted(loc)}: {error.reason}"
    where = f"{_dotted(loc)}: " if loc else ""
    return _line_of(loc, lines), where + _reason(err)


def _first_error(exc: ValidationError) -> dict:
    """Unknown keys first: a misspelt key also shows up as a missing one."""
    errors = exc.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


# ---------------------------------------------------------------------------------------------
# Public API


def load_board(path: Path | str) -> Board:
    """Read and validate one board file; any problem is a one-line `KwsError`."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KwsError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise KwsError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    data, lines = _compose(text, shown)
    if "id" in data:
        raise KwsError(f"{shown}:{lines[('id',)]} id: not a board setting; the id is the file "
                       f"name ({path.stem})")
    try:
        return Board.model_validate({"id": path.stem, **data})
    except ValidationError as exc:
        line, text = _message(_first_error(exc), lines)
        raise KwsError(f"{shown}:{line} {text}") from None


def _nice(path: Path) -> Path:
    """boards/x.yaml rather than /abs/path/boards/x.yaml when under the working folder."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def known_ids() -> list[str]:
    return [path.stem for path in board_files()]


def board_path(board_id: str) -> Path:
    """boards/<id>.yaml for a known id; an unknown id names the known ones."""
    ids = known_ids()
    if board_id not in ids:
        close = difflib.get_close_matches(board_id, ids, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = ", ".join(ids) if ids else f"none in {boards_dir()}"
        raise KwsError(f"unknown board {board_id!r} (known: {known}){hint}")
    return _nice(boards_dir() / f"{board_id}.yaml")


def load_by_id(board_id: str) -> Board:
    return load_board(board_path(board_id))


def board_files() -> list[Path]:
    """Every boards/*.yaml, sorted by id."""
    folder = boards_dir()
    return sorted(_nice(p) for p in folder.glob("*.yaml")) if folder.is_dir() else []


def list_boards() -> list[Board]:
    """Every board in boards/, sorted by id; the first broken file raises its one-line error."""
    return [load_board(path) for path in board_files()]
