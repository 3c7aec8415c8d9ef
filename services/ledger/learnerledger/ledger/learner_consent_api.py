"""``LearnerConsentService``: learners grant and revoke readers' consent themselves.

Callers are learners signed in with an ID token (``rpc/learner_tokens.py``); a learner changes
only their own consent. A grant names a purpose and an expiry; the consent lapses on its own
at expiry (the query service and the ledger evaluate it whenever they read consent). Requests
travel like an admin's (``admin_api.publish_consent``): consent_requests for request ids, then
completions.v1 keyed by the learner, appended by the ledger with basis ``learner``.
"""

from __future__ import annotations

from typing import Any

import grpc

from learnerledger.domain.events import ConsentAction, ConsentBasis
from learnerledger.domain.learners import is_apaar_id
from learnerledger.ledger.admin_api import ConsentPublisher, consent_terms, publish_consent
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.rpc.auth import BearerAuthenticator
from learnerledger.rpc.errors import Reason, RpcFailure, Violation, abort, invalid_argument
from learnerledger.v1 import learner_consent_pb2 as pb
from learnerledger.v1 import learner_consent_pb2_grpc as pb_grpc

#: A learner's request ids are kept as ``learner:<id>:<request id>`` (consent_requests allows
#: 128 characters), so one learner's keys never collide with another's or an admin's.
MAX_REQUEST_ID_CHARS = 100


class LearnerConsentApi(pb_grpc.LearnerConsentServiceServicer):
    def __init__(self, *, publisher: ConsentPublisher, authenticator: BearerAuthenticator) -> None:
        self._publisher = publisher
        self._auth = authenticator

    async def _own(self, context: Any, learner_id: str, request_id: str) -> str:
        """Authorize the signed-in learner for ``learner_id``; the namespaced request id."""
        try:
            principal = await self._auth.principal(context.invocation_metadata())
            if principal.kind is not PrincipalKind.LEARNER:
                raise RpcFailure(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "only a learner signed in with an ID token changes their own consent "
                    f"(the token belongs to a {principal.kind.value}; admins use "
                    "LedgerAdminService for consent under a mandate)",
                    reason=Reason.WRONG_PRINCIPAL_KIND,
                    metadata={"token_kind": principal.kind.value},
                )
            if not is_apaar_id(learner_id):
                raise invalid_argument([Violation("learner_id", "must be a 12-digit APAAR id")])
            if learner_id != principal.principal_id:
                raise RpcFailure(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "a signed-in learner changes only their own consent",
                    reason=Reason.NOT_OWN_RECORD,
                    metadata={"learner_id": learner_id},
                )
            if len(request_id) > MAX_REQUEST_ID_CHARS:
                raise invalid_argument(
                    [Violation("request_id", f"at most {MAX_REQUEST_ID_CHARS} characters")]
                )
        except RpcFailure as failure:
            await abort(context, failure)
        return f"learner:{learner_id}:{request_id}"

    async def GrantReaderConsent(
        self, request: pb.GrantReaderConsentRequest, context: Any
    ) -> pb.GrantReaderConsentResponse:
        claimed = await self._own(context, request.learner_id, request.request_id)
        terms = await consent_terms(
            context,
            request.purpose,
            request.expire_time if request.HasField("expire_time") else None,
            required=True,
        )
        event_id = await publish_consent(
            self._publisher,
            context,
            request,
            ConsentAction.GRANT,
            basis=ConsentBasis.LEARNER,
            terms=terms,
            claimed_request_id=claimed,
        )
        return pb.GrantReaderConsentResponse(event_id=event_id)

    async def RevokeReaderConsent(
        self, request: pb.RevokeReaderConsentRequest, context: Any
    ) -> pb.RevokeReaderConsentResponse:
        claimed = await self._own(context, request.learner_id, request.request_id)
        event_id = await publish_consent(
            self._publisher,
            context,
            request,
            ConsentAction.REVOKE,
            basis=ConsentBasis.LEARNER,
            terms=None,
            claimed_request_id=claimed,
        )
        return pb.RevokeReaderConsentResponse(event_id=event_id)
