"""Feature levels (KIP-584): ApiVersions' feature fields and UpdateFeatures (57)."""

from __future__ import annotations

from kafkapy.cluster.features import FEATURES, FeatureStore, feature
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_response import (
    ApiVersionsResponse,
    FinalizedFeatureKey,
    SupportedFeatureKey,
)
from kafkapy.protocol.messages.update_features_request import UpdateFeaturesRequest
from kafkapy.protocol.messages.update_features_response import UpdatableFeatureResult, UpdateFeaturesResponse
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

log = get_logger(__name__)


def add_features(resp: ApiVersionsResponse, features: FeatureStore, version: int) -> None:
    """SupportedFeatures, FinalizedFeatures and FinalizedFeaturesEpoch (v3+), as Kafka: v3 leaves out the
    supported features whose min version is 0 (older clients refused such a range, KAFKA-17011), and a
    feature finalized at level 0 is not listed."""
    resp.supported_features = [
        SupportedFeatureKey(name=f.name, min_version=f.min_version, max_version=f.max_version)
        for f in sorted(FEATURES, key=lambda f: f.name)
        if version >= 4 or f.min_version > 0
    ]
    resp.finalized_features = [
        FinalizedFeatureKey(name=name, max_version_level=level, min_version_level=level)
        for name, level in sorted(features.finalized().items())
        if level > 0
    ]
    resp.finalized_features_epoch = features.epoch


# UpgradeType (v1+): 1 upgrade only, 2 safe downgrade, 3 unsafe downgrade
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3
FAILED = "The update failed for all features since the following feature had an error: "


def _refusal(ctx: RequestContext, name: str, level: int, upgrade_type: int, current: dict[str, int]) -> str | None:
    """Why this one update is refused, in Kafka 4.3.1's words; None if it is valid."""
    if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
        reason = "The controller does not support the given upgrade type."
    elif level < 0:
        reason = "A feature version cannot be less than 0."
    elif (f := feature(name)) is None:
        controller = ctx.state.metadata.controller_id
        reason = (
            f"Feature {name} not found."
            if level == 0
            else f"Local controller {controller} does not support this feature."
        )
    elif not f.min_version <= level <= f.max_version:
        controller = ctx.state.metadata.controller_id
        reason = f"Local controller {controller} only supports versions {f.min_version}-{f.max_version}"
    elif level < current[name] and upgrade_type == UPGRADE:
        reason = (
            "Can't downgrade the version of this feature without setting the upgrade type to either safe or "
            "unsafe downgrade."
        )
    elif level > current[name] and upgrade_type != UPGRADE:
        reason = "Can't downgrade to a newer version."
    else:
        return None
    return f"Invalid update version {level} for feature {name}. {reason}"


async def update_features(ctx: RequestContext, req: UpdateFeaturesRequest) -> UpdateFeaturesResponse:
    """Validate every update, then apply all of them at once or none (as Kafka's controller does). v0's
    AllowDowngrade is not honoured: Kafka 4.3.1 treats every v0 update as an upgrade."""
    if not authz.cluster(ctx, AclOperation.ALTER):
        principal = ctx.conn.principal if ctx.conn is not None else authz.ANONYMOUS
        return UpdateFeaturesResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message=f"Request UpdateFeatures v{ctx.version} of {principal} needs ALTER permission.",
        )
    store = ctx.state.features
    for _ in range(10):  # another broker's update between our read and write: check again
        epoch, current = store.epoch, store.finalized()
        levels: dict[str, int] = {}
        for u in req.feature_updates:
            upgrade_type = u.upgrade_type if ctx.version >= 1 else UPGRADE
            why = _refusal(ctx, u.feature, u.max_version_level, upgrade_type, current)
            if why is not None:
                log.info("feature update refused", reason=why)
                return UpdateFeaturesResponse(error_code=ErrorCode.INVALID_UPDATE_VERSION, error_message=FAILED + why)
            levels[u.feature] = u.max_version_level
        changed = {name: level for name, level in levels.items() if level != current[name]}
        if req.validate_only or not changed or await store.update(changed, epoch):
            break
    else:
        return UpdateFeaturesResponse(
            error_code=ErrorCode.REQUEST_TIMED_OUT, error_message="Concurrent feature updates kept conflicting."
        )
    if changed and not req.validate_only:
        log.info("finalized features updated", levels=changed, epoch=store.epoch)
    results = [
        UpdatableFeatureResult(feature=u.feature, error_code=0, error_message="NONE") for u in req.feature_updates
    ]
    return UpdateFeaturesResponse(error_code=ErrorCode.NONE, error_message=None, results=results)
