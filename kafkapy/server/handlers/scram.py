"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51) over the SCRAM credential store.

Answers as Apache Kafka 4.3.1 gives them (checked against it):

Describe: null or empty `users` lists every user with credentials; a name
asked twice is DUPLICATE_RESOURCE (those results come first), a user without
credentials RESOURCE_NOT_FOUND.

Alter: one result per user. A user named twice among the upsertions, or
twice among the deletions, is DUPLICATE_RESOURCE "A user credential cannot be
altered twice in the same request" (after the other results); an empty name
is UNACCEPTABLE_CREDENTIAL "Username must not be empty"; a mechanism other
than 1 (SHA-256) or 2 (SHA-512) UNSUPPORTED_SASL_MECHANISM; iterations
outside 4096..16384 UNACCEPTABLE_CREDENTIAL "Too few/many iterations";
deleting a credential that does not exist RESOURCE_NOT_FOUND. Each user's
change applies on its own (one failing user does not stop the others). The
client sends the salted password, never the password: the store keeps the
salt, StoredKey and ServerKey derived from it.

Authorization (Kafka's KafkaApis / ControllerApis): Describe needs Describe on
the cluster, Alter needs Alter on it; CLUSTER_AUTHORIZATION_FAILED otherwise,
at the top and for each user named (Describe: without the user's name, as
Kafka's error response leaves it out; Alter: each distinct user, sorted).
"""

from __future__ import annotations

from kafkapy.cluster.scram_store import Upsert
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkapy.protocol.messages.alter_user_scram_credentials_response import (
    AlterUserScramCredentialsResponse,
    AlterUserScramCredentialsResult,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_response import (
    CredentialInfo,
    DescribeUserScramCredentialsResponse,
    DescribeUserScramCredentialsResult,
)
from kafkapy.security.acl import AclOperation
from kafkapy.security.scram import BY_TYPE, MECHANISMS, credential_from_salted
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

log = get_logger(__name__)

DUPLICATE_ALTER = "A user credential cannot be altered twice in the same request"
NOT_FOUND_DELETE = "Attempt to delete a user credential that does not exist"
NOT_AUTHORIZED = "Cluster authorization failed."


async def describe_user_scram_credentials(
    ctx: RequestContext, req: DescribeUserScramCredentialsRequest
) -> DescribeUserScramCredentialsResponse:
    if not authz.cluster(ctx, AclOperation.DESCRIBE):
        refused = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return DescribeUserScramCredentialsResponse(
            error_code=refused,
            error_message=None,
            results=[
                DescribeUserScramCredentialsResult(user="", error_code=refused, error_message=None, credential_infos=[])
                for _ in req.users or ()
            ],
        )
    store = ctx.state.scram
    known = store.users() if store is not None else {}

    def infos(user: str) -> list[CredentialInfo]:
        return [
            CredentialInfo(mechanism=MECHANISMS[m].mechanism_type, iterations=i)
            for m, i in sorted(known[user].items(), key=lambda kv: MECHANISMS[kv[0]].mechanism_type)
        ]

    results: list[DescribeUserScramCredentialsResult] = []
    if not req.users:
        for user in known:
            results.append(
                DescribeUserScramCredentialsResult(
                    user=user, error_code=0, error_message="", credential_infos=infos(user)
                )
            )
    else:
        counts: dict[str, int] = {}
        for u in req.users:
            counts[u.name] = counts.get(u.name, 0) + 1
        for name, n in counts.items():
            if n > 1:
                message = f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                results.append(
                    DescribeUserScramCredentialsResult(
                        user=name, error_code=ErrorCode.DUPLICATE_RESOURCE, error_message=message, credential_infos=[]
                    )
                )
        for name, n in counts.items():
            if n > 1:
                continue
            if name in known:
                results.append(
                    DescribeUserScramCredentialsResult(
                        user=name, error_code=0, error_message="", credential_infos=infos(name)
                    )
                )
            else:
                results.append(
                    DescribeUserScramCredentialsResult(
                        user=name,
                        error_code=ErrorCode.RESOURCE_NOT_FOUND,
                        error_message=f"Attempt to describe a user credential that does not exist: {name}",
                        credential_infos=[],
                    )
                )
    return DescribeUserScramCredentialsResponse(error_code=ErrorCode.NONE, error_message="", results=results)


def _check_upsert(u: ScramCredentialUpsertion) -> tuple[ErrorCode, str | None] | None:
    if not u.name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    mech = BY_TYPE.get(u.mechanism)
    if mech is None:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if u.iterations < mech.min_iterations:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if u.iterations > mech.max_iterations:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    if not u.salted_password:
        return ErrorCode.UNKNOWN_SERVER_ERROR, None  # Kafka fails deriving keys from an empty salted password
    return None


async def alter_user_scram_credentials(
    ctx: RequestContext, req: AlterUserScramCredentialsRequest
) -> AlterUserScramCredentialsResponse:
    if not authz.cluster(ctx, AclOperation.ALTER):
        users = sorted({d.name for d in req.deletions} | {u.name for u in req.upsertions})
        refused = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return AlterUserScramCredentialsResponse(
            throttle_time_ms=0,
            results=[
                AlterUserScramCredentialsResult(user=u, error_code=refused, error_message=NOT_AUTHORIZED) for u in users
            ],
        )
    store = ctx.state.scram
    assert store is not None, "the SCRAM store opens with the broker's services"
    duplicates: dict[str, None] = {}
    deletions: dict[str, ScramCredentialDeletion] = {}
    upsertions: dict[str, ScramCredentialUpsertion] = {}
    for d in req.deletions:
        if d.name in deletions:
            duplicates[d.name] = None
        deletions[d.name] = d
    for u in req.upsertions:
        if u.name in upsertions:
            duplicates[u.name] = None
        upserts_name = u.name
        upsertions[upserts_name] = u
    known = store.users()
    results: dict[str, AlterUserScramCredentialsResult] = {}
    pending_deletes: list[tuple[str, str]] = []
    pending_upserts: list[Upsert] = []

    def result(name: str, code: int, message: str | None) -> None:
        if name not in results:
            results[name] = AlterUserScramCredentialsResult(user=name, error_code=code, error_message=message)

    for name, d in deletions.items():
        if name in duplicates:
            continue
        if not name:
            result(name, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
            continue
        mech = BY_TYPE.get(d.mechanism)
        if mech is None:
            result(name, ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")
        elif mech.name not in known.get(name, {}):
            result(name, ErrorCode.RESOURCE_NOT_FOUND, NOT_FOUND_DELETE)
        else:
            pending_deletes.append((name, mech.name))
    for name, u in upsertions.items():
        if name in duplicates or name in results:
            continue
        problem = _check_upsert(u)
        if problem is not None:
            result(name, problem[0], problem[1])
            pending_deletes = [(n, m) for n, m in pending_deletes if n != name]
            continue
        mech = BY_TYPE[u.mechanism]
        cred = credential_from_salted(mech, bytes(u.salted_password), bytes(u.salt), u.iterations)
        pending_upserts.append(Upsert(name, mech.name, cred))
    await store.alter(pending_upserts, pending_deletes)
    changed = sorted({n for n, _ in pending_deletes} | {u.user for u in pending_upserts})
    if changed:
        log.info("scram credentials altered", users=",".join(changed), client_id=ctx.client_id)
    ordered = [n for n in deletions if n not in duplicates] + [n for n in upsertions if n not in duplicates]
    answer: list[AlterUserScramCredentialsResult] = []
    for name in dict.fromkeys(ordered):
        answer.append(results.get(name) or AlterUserScramCredentialsResult(user=name, error_code=0, error_message=None))
    for name in duplicates:
        answer.append(
            AlterUserScramCredentialsResult(
                user=name, error_code=ErrorCode.DUPLICATE_RESOURCE, error_message=DUPLICATE_ALTER
            )
        )
    return AlterUserScramCredentialsResponse(throttle_time_ms=0, results=answer)
