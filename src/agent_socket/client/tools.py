"""Tools from Python functions: path, description and input schema derived, input validated.

A tool's ``input_schema`` (JSON Schema, as listed in ``tools.json`` — PROTOCOL.md §2.2) comes
from the handler's signature through pydantic:

- a handler whose only input parameter is annotated with a pydantic model takes the whole JSON
  body as that model, and the schema is the model's;
- otherwise each parameter is a property of a JSON object body (type hint → type, default →
  optional), extra properties are refused;
- a handler without input parameters has no ``input_schema`` and ignores the body.

A parameter annotated :class:`~agent_socket.client.replies.Call` receives the raw call instead
and is left out of the schema. Input that does not match is answered ``400 bad_input`` with
pydantic's error list in ``details``, before the handler runs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import typing
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agent_socket.client.replies import BAD_INPUT, Call, Reply
from agent_socket.protocol.frames import is_reserved_path
from agent_socket.protocol.ids import TOOL_PATH_RE

Handler = Callable[..., Any]

#: HTTP methods a tool may be registered for (the relay accepts any token; these are the sane ones).
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class BadInput(Exception):
    """The agent's input does not fit the tool: becomes ``400 bad_input``."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_reply(self) -> Reply:
        return Reply.error(BAD_INPUT, self.message, status=400, details=self.details)


def check_path(path: str) -> str:
    """``path`` if the relay will accept it as a tool path (§3.1), else ``ValueError``."""
    if not isinstance(path, str) or not TOOL_PATH_RE.match(path):
        raise ValueError(f"tool path {path!r} must match ^/[a-zA-Z0-9_\\-/.]+$")
    if is_reserved_path(path):
        raise ValueError(
            f"tool path {path!r} is reserved: /agents.md, /tools.json and /_as_* belong to "
            "the relay"
        )
    return path


def _first_doc_paragraph(func: Handler) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.strip()


@dataclass(slots=True)
class _Input:
    """How the body of a call becomes the handler's arguments."""

    schema: dict[str, Any] | None
    model: type[BaseModel] | None
    whole_body_param: str | None  # the parameter that takes the whole body as a model
    call_params: tuple[str, ...] = ()
    arg_names: tuple[str, ...] = ()


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles (they repeat the names) so the schema reads cleanly."""

    def strip(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "title" and not in_properties and isinstance(value, str):
                    continue
                out[key] = strip(value, in_properties=(key == "properties"))
            return out
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    result = strip(schema)
    assert isinstance(result, dict)
    return result


def _derive_input(func: Handler) -> _Input:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    call_params: list[str] = []
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool handler {func.__name__}: *args/**kwargs are not supported")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(
                f"tool handler {func.__name__}: positional-only parameters are not supported"
            )
        annotation = hints.get(name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        if annotation is Call:
            call_params.append(name)
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    if not fields:
        return _Input(None, None, None, tuple(call_params))
    if len(fields) == 1:
        ((name, (annotation, default)),) = fields.items()
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel) and default is ...:
            return _Input(
                _clean_schema(annotation.model_json_schema()),
                annotation,
                name,
                tuple(call_params),
                (name,),
            )
    model = create_model(
        f"{func.__name__}_input",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    schema = _clean_schema(model.model_json_schema())
    return _Input(schema, model, None, tuple(call_params), tuple(fields))


@dataclass(slots=True)
class Tool:
    """One tool: what agents see (method, path, description, input schema) and its handler.

    Build one with :meth:`from_function` (or the ``@app.tool`` decorator). ``long_running`` tools
    always answer ``202`` with a task id and complete through ``task_complete``.
    """

    method: str
    path: str
    description: str
    handler: Handler
    input_schema: dict[str, Any] | None = None
    long_running: bool = False
    _input: _Input | None = field(default=None, repr=False)

    @classmethod
    def from_function(
        cls,
        func: Handler,
        path: str,
        *,
        method: str = "POST",
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        long_running: bool = False,
    ) -> Tool:
        """Derive a tool from ``func``; ``ValueError``/``TypeError`` when it cannot be a tool.

        ``description`` defaults to the docstring; ``input_schema`` overrides the derived schema
        in ``tools.json`` only — validation still follows the signature.
        """
        check_path(path)
        upper = method.upper()
        if not upper.isascii() or not upper.isalpha():
            raise ValueError(f"tool method {method!r} must be an HTTP method name")
        derived = _derive_input(func)
        return cls(
            method=upper,
            path=path,
            description=description if description is not None else _first_doc_paragraph(func),
            handler=func,
            input_schema=input_schema if input_schema is not None else derived.schema,
            long_running=long_running,
            _input=derived,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def as_json(self) -> dict[str, Any]:
        """The tool as sent in ``register``/``update_tools`` and listed in ``tools.json``."""
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "description": self.description,
        }
        if self.input_schema is not None:
            out["input_schema"] = self.input_schema
        return out

    def arguments(self, call: Call) -> dict[str, Any]:
        """The keyword arguments for the handler, or :class:`BadInput` when the input is wrong."""
        spec = self._input
        kwargs: dict[str, Any] = {}
        if spec is not None:
            for name in spec.call_params:
                kwargs[name] = call
        if spec is None or spec.model is None:
            return kwargs
        if call.body.strip():
            try:
                data = json.loads(call.body)
            except ValueError as exc:
                raise BadInput(f"the body is not valid JSON: {exc}") from None
        else:
            data = {}
        if spec.whole_body_param is not None:
            try:
                kwargs[spec.whole_body_param] = spec.model.model_validate(data)
            except ValidationError as exc:
                raise _bad_input(exc) from None
            return kwargs
        if not isinstance(data, dict):
            raise BadInput(f"the body must be a JSON object, not {type(data).__name__}")
        try:
            validated = spec.model.model_validate(data)
        except ValidationError as exc:
            raise _bad_input(exc) from None
        for name in spec.arg_names:
            kwargs[name] = getattr(validated, name)
        return kwargs

    async def run(self, kwargs: dict[str, Any], executor: Executor | None) -> Any:
        """Run the handler with validated ``kwargs``: coroutine functions on the loop, plain
        functions in ``executor`` (a worker thread). An awaitable returned by a plain function
        is awaited on the loop."""
        func = self.handler
        if inspect.iscoroutinefunction(func):
            return await func(**kwargs)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(executor, lambda: func(**kwargs))
        if inspect.isawaitable(result):
            return await result
        return result

    async def invoke(self, call: Call, executor: Executor | None = None) -> Any:
        """Validate ``call`` (raising :class:`BadInput`), then run the handler."""
        return await self.run(self.arguments(call), executor)


def _bad_input(exc: ValidationError) -> BadInput:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    details = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in errors]
    first = errors[0] if errors else None
    where = ".".join(str(part) for part in first["loc"]) if first and first["loc"] else "body"
    message = f"invalid input: {where}: {first['msg']}" if first else "invalid input"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return BadInput(message, details)
