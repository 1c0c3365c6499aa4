"""Schemathesis hooks: the few refusals the contract requires and no JSON schema can state.

Imported by tests/test_schemathesis.py; the CLI loads it with
`SCHEMATHESIS_HOOKS=tests.schemathesis_hooks` (run from the repository root).
Every check stays on; this hook drops only a "schema-valid request rejected" (ST202)
failure whose response proves it was one of these rules, and nothing else:

- 412 to a request that carried `If-Match`: a well-formed but stale ETag (RFC 9110 §13.1.1);
  which ETag is current is state, not syntax.
- 422 whose every error is one of the `STATEFUL_RULES` below: a cursor the server did not
  issue (it is HMAC-signed), a cursor together with `offset`, an `Idempotency-Key` reused
  with another body, or more than 10 tags once duplicates are removed.

It also drops ST202 on a case that is not schema-valid at all: schemathesis 4.32's coverage
phase cannot draw a valid `If-Match` (it never produces the `"` an entity tag needs), seeds
the optional header with an invalid value, and then labels cases built on it "positive"
although `case.meta.components` records the header as negative.
"""

import json
from typing import Any

import schemathesis
from schemathesis import Case, HookContext, Response
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import RejectedPositiveData

STATEFUL_RULES = frozenset({"invalid_cursor", "cursor_with_offset", "idempotency_key_reused", "too_many_tags"})


def _error_types(response: Response) -> set[str]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(error.get("type")) for error in errors if isinstance(error, dict)}


def has_invalid_component(case: Case[Any]) -> bool:
    """Whether some part of the request was generated to violate the schema."""
    return case.meta is not None and any(info.mode.is_negative for info in case.meta.components.values())


def is_contract_refusal(case: Case[Any], response: Response) -> bool:
    """Whether a refused schema-valid request was refused by a rule the schema cannot express."""
    if response.status_code == 412:
        return any(name.lower() == "if-match" for name in case.headers or {})
    if response.status_code == 422:
        types = _error_types(response)
        return bool(types) and types <= STATEFUL_RULES
    return False


@schemathesis.hook
def filter_failure(context: HookContext, failure: Failure, case: Case[Any], response: Response) -> bool:
    """Keep every failure except a positive-data rejection that `is_contract_refusal` explains."""
    if not isinstance(failure, RejectedPositiveData):
        return True
    return not (has_invalid_component(case) or is_contract_refusal(case, response))
