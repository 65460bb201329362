"""``http``: one request through a named connector; JSON answers mapped to variables.

```yaml
find_user:
  type: http
  connector: zendesk                   # services.connectors.<name>: base URL, auth, timeouts
  method: GET                          # GET, POST, PUT, PATCH, DELETE
  path: /api/v2/users/search.json
  query: {query: "phone:{ani}"}        # templates
  body: {note: "called from {ani}"}    # optional JSON body; strings are templates
  outputs:                             # variable: JSON path into the answer
    user_id: "$.users[0].id"
    user_locale: "$.users[0].locale"
  next: known_caller
  on_error: main_menu                  # timeout, unavailable, rejected, not-found
```
A path that reaches nothing sets its variable to "" (test it with ``condition``).
The connector retries 429 and 5xx answers within its own bound; what still fails is
an error of the activity (``error`` holds its kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import HttpRequest
from payivr.core.flow.events import HttpAnswered, HttpFailed
from payivr.core.flow.jsonpath import Step as PathStep
from payivr.core.flow.jsonpath import extract
from payivr.core.flow.model import Activity, Env, FlowReader, Step
from payivr.core.flow.variables import NAME, Variables

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Http(Activity):
    kind: ClassVar[str] = "http"
    keys: ClassVar[frozenset[str]] = frozenset(
        {"connector", "method", "path", "query", "body", "outputs"}
    )

    connector: str = ""
    method: str = "GET"
    path: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    body: object = None
    outputs: Mapping[str, tuple[PathStep, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Http:
        connector = r.get("connector", str, "")
        if not connector:
            r.problem("connector", "required (a connector of services.connectors)")
        else:
            r.refs.connectors.append((r.path_of("connector"), connector))
        path = r.template("path", shown=False, required=True)
        if path and not path.startswith("/"):
            r.problem("path", "must start with / (it is joined to the connector's base URL)")
        query = {}
        qs = r.section("query")
        for key, _ in qs.items():
            query[key] = qs.template(key, shown=False)
        body = _body(r, "body", r.data.get("body")) if r.has("body") else None
        outputs = {}
        out = r.section("outputs")
        for name, value in out.items():
            if not NAME.match(name):
                out.problem(name, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
                continue
            out.written(name, name)
            outputs[name] = out.json_path(name, value)
        if nxt is None:
            r.problem("next", "required (the activity after the answer)")
        return cls(
            aid,
            nxt,
            on_error,
            connector=connector,
            method=r.choice("method", METHODS, "GET"),
            path=path,
            query=query,
            body=body,
            outputs=outputs,
        )

    def begin(self, env: Env) -> Step:
        request = HttpRequest(
            self.connector,
            self.method,
            env.vars.render(self.path),
            tuple((k, env.vars.render(v)) for k, v in self.query.items()),
            _render(self.body, env.vars),
        )
        return Step((request,), waits=(HttpAnswered, HttpFailed))

    def answer(self, event: Any, env: Env) -> Step:
        if isinstance(event, HttpFailed):
            return Step(error=event.kind, outcome=f"error-{event.kind}")
        if not isinstance(event, HttpAnswered):
            raise IllegalTransition(f"http {self.id} waits for an answer, not {event!r}")
        for name, steps in self.outputs.items():
            env.vars.set(name, extract(event.body, steps))
        return Step(goto=self.next, outcome=f"status-{event.status}")


def _body(r: FlowReader, path: str, value: object) -> object:
    """A JSON body as written, its strings checked as templates."""
    if isinstance(value, str):
        return r.check_template(path, value, shown=False)
    if isinstance(value, dict):
        return {str(k): _body(r, f"{path}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [_body(r, f"{path}[{i}]", v) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    r.problem(path, "must be JSON (mappings, lists, strings, numbers, true/false, null)")
    return None


def _render(value: object, variables: Variables) -> object:
    if isinstance(value, str):
        return variables.render(value)
    if isinstance(value, dict):
        return {k: _render(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    return value
