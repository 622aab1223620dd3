"""sitrep's own schemathesis checks, loaded by .ci/schemathesis.sh (SCHEMATHESIS_HOOKS).

Two checks that the built-in ones cannot make, one false alarm of schemathesis dropped, and
one nudge to the generated events:

- `sse_events_conform`: the live feed, read up to a few events, against the spec. Schemathesis
  takes the `schema` of a `text/event-stream` response in an OpenAPI 3.1 document as the
  schema of each parsed event; ours is the stream as text (spec.rs validates its example
  against it), and the stored event each message carries is named by `x-sse-data-schema`
  (with `format=cloudevents`, a CloudEvent whose `data` is the stored event).
  So this check parses the messages itself: only `id` and `data` fields, `id` a seq equal to
  `data.seq`, ascending, after `after` / `Last-Event-ID`, `data` a StoredEvent that matches
  the filters. The built-in response_schema_conformance is off for that one operation
  (.ci/schemathesis.toml).
- `refusals_of_valid_input_are_state_dependent`: positive_data_acceptance allows `400` on the
  reads with `at_seq` and on the proofs, and `422` on `POST /v1/events`, because those answers
  can depend on the log (an `at_seq` or tree size beyond the head, an unregistered actor) or
  on rules JSON Schema cannot state (two members that must differ). This check makes that
  allowance exact: such a refusal of schema-valid input must name only those parameters or
  rules. Anything else is the spec and the server disagreeing.
- `filter_failure`: schemathesis re-validates the headers of a case whose only negation is an
  unexpected header as *strings*, so `Last-Event-ID: 0` fails its `type: integer` schema and
  the case is taken for one with an invalid value. HTTP servers ignore unknown headers; the
  failure is dropped when the declared headers are valid once read as the server reads them.
- `map_body`: a random slug is almost never a registered location or actor, so nearly every
  generated event would be refused `422 unknown_*` and the write path, the stored events and
  the links from a receipt would hardly be exercised. Most valid slugs that must name a
  registered entity are replaced by one the demo scenario registers (some are kept, so the
  `unknown_*` refusals are still tested). Invalid values are left alone.
"""

from __future__ import annotations

import copy
import json
import pathlib
import re
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs
import yaml

import schemathesis

# Python 3.11's `ast.parse` can fail with "SystemError: AST constructor recursion depth
# mismatch" (a CPython bug), at random, when hypothesis parses a lambda's source to describe a
# filtered strategy; the description is only ever displayed. Such a failure ended one CI run's
# coverage phase with a runtime error (GET /v1/audit/proof/consistency, Python 3.11.7,
# schemathesis 4.32.5, hypothesis 6.170.17). A lambda whose source cannot be parsed is
# described as hypothesis describes any other it cannot read.
try:
    from hypothesis.internal import lambda_sources as _lambda_sources
except ImportError:  # a hypothesis without that module has no such parse
    _lambda_sources = None
if _lambda_sources is not None and hasattr(_lambda_sources, "_lambda_description"):
    _describe_lambda = _lambda_sources._lambda_description

    def _lambda_description_despite_cpython(f):
        try:
            return _describe_lambda(f)
        except SystemError:
            return "lambda: <unknown>"

    _lambda_sources._lambda_description = _lambda_description_despite_cpython

SPEC_PATH = pathlib.Path(__file__).resolve().parent.parent / "api-spec" / "openapi.yaml"
_validators: dict[str, object] = {}


def _validator(pointer: str):
    """A validator for the schema at `pointer`, with the whole spec as the root document."""
    if pointer not in _validators:
        root = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
        root["$ref"] = pointer
        _validators[pointer] = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
    return _validators[pointer]


def _problem(response) -> dict:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


# ---------------------------------------------------------------------------
# The live feed
# ---------------------------------------------------------------------------

STREAM_PATH = "/v1/events/stream"
# Every `data` member that names an actor (README: what `GET /v1/events?actor=` matches).
ACTOR_MEMBERS = ("actor", "defender", "attacker", "provider", "supported", "member_of")


def _sse_messages(text: str):
    """(id, data, other fields) of each complete message; comment-only blocks skipped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = text.split("\n\n")[:-1]  # the last piece is an unfinished message (or empty)
    for block in blocks:
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        if fields:
            ids = fields.pop("id", [None])
            data = fields.pop("data", None)
            yield ids[-1], None if data is None else "\n".join(data), sorted(fields)


def _names_actor(event: dict, actor: str) -> bool:
    if event.get("actor") == actor:
        return True
    data = event.get("data") or {}
    return any(data.get(m) == actor for m in ACTOR_MEMBERS) or actor in (data.get("actors") or [])


@schemathesis.check
def sse_events_conform(ctx, response, case):
    if case.operation.path != STREAM_PATH or response.status_code != 200:
        return None
    ctype = (response.headers.get("content-type") or [""])[0]
    if not ctype.startswith("text/event-stream"):
        raise AssertionError(f"a 200 from the feed is not text/event-stream: {ctype!r}")
    sent = response.request
    query = {k: v[-1] for k, v in parse_qs(urlsplit(sent.url).query, keep_blank_values=True).items()}
    last_event_id = sent.headers.get("Last-Event-ID")
    start = int(last_event_id) if last_event_id is not None else int(query.get("after", 0))
    # With format=cloudevents each message is a CloudEvent carrying the stored event as `data`.
    cloudevents = query.get("format") == "cloudevents"
    schema = "CloudEvent" if cloudevents else "StoredEvent"
    validator = _validator(f"#/components/schemas/{schema}")
    previous = start
    for raw_id, data, other in _sse_messages(response.content.decode("utf-8")):
        if other:
            raise AssertionError(f"undocumented event-stream fields {other}")
        if raw_id is None or not re.fullmatch(r"[1-9][0-9]*", raw_id):
            raise AssertionError(f"an event whose id is not a seq: {raw_id!r}")
        seq = int(raw_id)
        if data is None:
            raise AssertionError(f"event {seq} carries no data")
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise AssertionError(f"event {seq}: data is not JSON: {exc}") from None
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(event)]
        if errors:
            raise AssertionError(f"event {seq} does not match {schema}:\n  " + "\n  ".join(errors))
        if cloudevents:
            if event["sequence"] != f"{seq:020}":
                raise AssertionError(f"event {seq}: sequence {event['sequence']!r} is not its seq")
            event = event["data"]
        if event["seq"] != seq:
            raise AssertionError(f"event id {seq} differs from its data's seq {event['seq']}")
        if seq <= previous:
            raise AssertionError(f"event {seq} comes after {previous} (the stream starts after {start})")
        previous = seq
        if "type" in query and event["type"] != query["type"]:
            raise AssertionError(f"event {seq} is a {event['type']}, the filter asks for {query['type']}")
        if "location" in query and event.get("location") != query["location"]:
            raise AssertionError(f"event {seq} is on {event.get('location')}, the filter asks for {query['location']}")
        if "actor" in query and not _names_actor(event, query["actor"]):
            raise AssertionError(f"event {seq} does not name actor {query['actor']}")
    return None


# ---------------------------------------------------------------------------
# Refusals of schema-valid input
# ---------------------------------------------------------------------------

# Parameters whose valid values depend on the log or on each other: `at_seq` beyond the head;
# a proof's `seq` beyond `tree_size`, `first` beyond `second`, a size beyond the head.
STATE_DEPENDENT_PARAMETERS = {"at_seq", "seq", "tree_size", "first", "second"}

# `POST /v1/events`: what a schema-valid event may still be refused for.
STATE_DEPENDENT_CODES = {"unknown_location", "unknown_actor", "unknown_event"}
# validation_failed fields (batch prefix `[i].` removed) for rules JSON Schema cannot state.
CROSS_MEMBER_FIELDS = {
    "data.attacker",  # attack_repelled: the attacker must differ from the defender
    "data.supported",  # air_support_provided: the supported actor must differ from the provider
    "data.parent",  # location_registered: a location cannot be its own parent
    "data.member_of",  # actor_registered: an actor cannot be a member of itself
    "data.event_id",  # event_retracted: the target is a registration or a retraction
    "location",  # event_retracted: the retraction's location must be the target's
    "id",  # a batch names an id twice
    "",  # the stored event would exceed 32 KiB (a byte limit, not a JSON Schema one)
    "data.geometry",  # the same limit, when a shape makes the event large
    "data",  # an amendment whose every member is null names nothing to amend
    "occurred_at",  # occurred_precision: occurred_at must start its unit
    "occurred_precision",  # a precision posted with occurred_at null
    "data.killed_low",  # casualties_reported: low <= best <= high
    "data.killed_high",
    "data.wounded_low",
    "data.wounded_high",
}
# validation_failed field prefixes for the same kind of rule.
CROSS_MEMBER_PREFIXES = (
    "data.names.",  # two keys naming one language tag in different case
    "data.geometry.coordinates",  # a linear ring must be closed (last position = first)
)
_BATCH_PREFIX = re.compile(r"^\[\d+\]\.?")


# The operations where .ci/schemathesis.toml lets positive_data_acceptance allow 400 or 422.
ALLOWED_400 = {
    "/v1/locations",
    "/v1/locations/{id}",
    "/v1/actors",
    "/v1/actors/{id}",
    "/v1/audit/proof/inclusion",
    "/v1/audit/proof/consistency",
}
ALLOWED_422 = {"/v1/events"}


def _cross_member(field: str) -> bool:
    return field in CROSS_MEMBER_FIELDS or field.startswith(CROSS_MEMBER_PREFIXES)


@schemathesis.check
def refusals_of_valid_input_are_state_dependent(ctx, response, case):
    if not _is_positive(case):
        return None
    method, path, status = case.method.upper(), case.operation.path, response.status_code
    if not ((method == "GET" and path in ALLOWED_400 and status == 400) or (
        method == "POST" and path in ALLOWED_422 and status == 422
    )):
        return None
    problem = _problem(response)
    code = problem.get("code")
    # Text made only of invisible characters (zero-width spaces, a BOM) is empty, a rule
    # JSON Schema cannot state: such fields count as the server's own rule, not the spec's.
    fields = {
        e.get("field")
        for e in problem.get("errors") or []
        if isinstance(e, dict) and "must not be empty" not in str(e.get("message"))
    }
    invisible_only = bool(problem.get("errors")) and not fields
    if status == 400 and code == "invalid_parameter" and fields and fields <= STATE_DEPENDENT_PARAMETERS:
        return None
    if status == 422:
        if code in STATE_DEPENDENT_CODES or (code == "validation_failed" and invisible_only):
            return None
        # Every refused member must be one of the cross-member rules above.
        if (
            code == "validation_failed"
            and fields
            and all(_cross_member(_BATCH_PREFIX.sub("", f or "")) for f in fields)
        ):
            return None
    raise AssertionError(
        f"Schema-valid request refused with {status} {code}: {problem.get('detail')!r}\n"
        "The spec allows what the server refuses (or the refusal names no state-dependent rule)."
    )


# ---------------------------------------------------------------------------
# Failures that are not the server's
# ---------------------------------------------------------------------------


def _only_unknown_headers_with_valid_last_event_id(case) -> bool:
    declared = {"last-event-id", "x-request-id"}
    headers = {k.lower(): v for k, v in (case.headers or {}).items()}
    if not set(headers) - declared:
        return False  # no unknown header: not this false alarm
    if case.query and _has_invalid_query(case):
        return False
    value = headers.get("last-event-id")
    return value is None or (isinstance(value, int) and value >= 0) or bool(re.fullmatch(r"[0-9]{1,19}", str(value).strip(" \t")))


def _has_invalid_query(case) -> bool:
    meta = case.meta
    if meta is None:
        return True
    from schemathesis.core.parameters import ParameterLocation

    component = meta.components.get(ParameterLocation.QUERY)
    return component is not None and component.mode.is_negative


def _min_seq_not_folded(case, response) -> bool:
    """A `503 unavailable` because `min_seq` is beyond what the server has folded: by design
    (CONTRACT section 14), and state no schema states. The server runs with --min-seq-wait 0.01,
    so the answer comes at once; tests/api/scaleout.rs covers the wait."""
    if response is None or response.status_code != 503 or "min_seq" not in (case.query or {}):
        return False
    try:
        return "min_seq" in response.json().get("detail", "")
    except ValueError:
        return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but schemathesis's misreading of an integer header (see the top),
    and the 503 of a `min_seq` beyond the head."""
    if (
        failure.code == "ST201"
        and case.operation.path == STREAM_PATH
        and "in header - object with unexpected properties" in failure.message
        and _only_unknown_headers_with_valid_last_event_id(case)
    ):
        return False
    if failure.code == "ST101" and _min_seq_not_folded(case, response):
        return False
    return True


# ---------------------------------------------------------------------------
# Generated events name registered entities
# ---------------------------------------------------------------------------

DEMO_PATH = SPEC_PATH.parent / "examples" / "aleppo-2024-11-30.json"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_known: dict[str, list[str]] = {}


def _registered(kind: str) -> list[str]:
    if not _known:
        demo = json.loads(DEMO_PATH.read_text(encoding="utf-8"))
        _known["location"] = sorted({e["location"] for e in demo if e["type"] == "location_registered"})
        _known["actor"] = sorted({e["actor"] for e in demo if e["type"] == "actor_registered"})
    return _known[kind]


def _registered_like(kind: str, value):
    """A registered id instead of a valid slug, four times in five (decided by the value, so
    Hypothesis still shrinks and replays deterministically)."""
    if not isinstance(value, str) or not _SLUG.match(value):
        return value
    digest = sum(value.encode()) * 31 + len(value)
    if digest % 5 == 0:
        return value
    known = _registered(kind)
    return known[digest % len(known)]


def _nudge(event):
    if not isinstance(event, dict):
        return event
    registration = event.get("type") in ("location_registered", "actor_registered")
    if "location" in event and not registration:
        event["location"] = _registered_like("location", event["location"])
    if "actor" in event and event.get("type") == "actor_amended":
        event["actor"] = _registered_like("actor", event["actor"])
    source = event.get("source")
    if isinstance(source, dict) and "claimant" in source:
        source["claimant"] = _registered_like("actor", source["claimant"])
    data = event.get("data")
    if isinstance(data, dict):
        for member in ("actor", "defender", "attacker", "provider", "supported", "member_of"):
            if member in data:
                data[member] = _registered_like("actor", data[member])
        if "parent" in data:
            data["parent"] = _registered_like("location", data["parent"])
        if isinstance(data.get("actors"), list):
            actors = [_registered_like("actor", a) for a in data["actors"]]
            # Two slugs must not turn into one registered id (`uniqueItems`).
            if len(set(map(json.dumps, actors))) == len(set(map(json.dumps, data["actors"]))):
                data["actors"] = actors
    return event


@schemathesis.hook
def map_body(context, body):
    operation = getattr(context, "operation", None)
    if operation is None or operation.path != "/v1/events" or operation.method.upper() != "POST":
        return body
    body = copy.deepcopy(body)  # never change what Hypothesis drew in place
    if isinstance(body, list):
        return [_nudge(e) for e in body]
    return _nudge(body)


# ---------------------------------------------------------------------------
# min_seq
# ---------------------------------------------------------------------------


@schemathesis.hook
def map_query(context, query):
    """Pin a generated `min_seq` to 0 where schemathesis applies this hook (its coverage
    phase does not: `filter_failure` lets the 503 of a `min_seq` beyond the head pass).

    A `min_seq` beyond the head waits (`--min-seq-wait`) and then answers `503` by design
    (CONTRACT section 14): which seqs are folded depends on the log, which no schema can
    state. 0 is always folded; tests/api/scaleout.rs covers the wait and the 503.
    """
    if query and "min_seq" in query:
        query["min_seq"] = 0
    return query
