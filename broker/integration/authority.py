"""Authentication by certificate (devices) or API key (services) and authorization by
compiled ACLs, from memory only."""

from __future__ import annotations

import logging
from collections import Counter

from acl.compiler import DecisionCache, Matcher, compile_rules
from acl.loading import TenantRules
from acl.rules import Principal as AclPrincipal
from broker.engine.interfaces import (
    Action,
    ConnectionFacts,
    Decision,
    Principal,
    format_address,
    is_broker_topic,
)

from .identities import (
    Authenticated,
    AuthenticatedService,
    DeviceIdentity,
    IdentityIndex,
    Refusal,
    TenantInfo,
)
from .signed_principals import verify_principal

log = logging.getLogger("roost.broker.auth")

NOT_AUTHORIZED = 0x87
BAD_USER_NAME_OR_PASSWORD = 0x86
BRIDGE_LISTENER = "bridge"
PLAIN_LISTENER = "plain"
SERVICE_LISTENER = "service"
"""TLS without client certificates: API keys only (and API keys nowhere else)."""
# Without TLS there is no certificate: these listeners take signed principals only.
TOKEN_LISTENERS = frozenset((BRIDGE_LISTENER, PLAIN_LISTENER))


PLATFORM_TOPICS = "$roost/"
"""The platform's own namespace in a tenant's view: clients publish into it only on the
request topics the platform answers."""
ANSWERED_REQUEST_TOPICS: tuple[str, ...] = ()
"""Prefixes under `$roost/` that clients may publish to (the platform answers them), e.g.
"$roost/shadow/" once device shadows exist. The only place to open one; the tenant's ACL
rules still decide who may publish there."""


def is_platform_topic(topic: str) -> bool:
    """A `$SYS` or `$roost/` topic no client may publish to (request topics excepted)."""
    if topic.startswith(PLATFORM_TOPICS):
        return not topic.startswith(ANSWERED_REQUEST_TOPICS)  # () matches nothing
    return is_broker_topic(topic)


def acl_principal_of(tenant: TenantInfo, device: DeviceIdentity) -> AclPrincipal:
    return AclPrincipal.for_device(tenant.slug, device.name, device.groups, device.attributes)


class PlatformAuthority:
    """The broker's Authenticator and Authorizer: devices on the mTLS listeners, services with
    API keys on the service listener, signed principals on the bridge and plain listeners.

    A connection's principal carries its decision cache in `attributes["acl"]`; a session
    restored from storage gets one on first use. `refusals` and `denials` feed the metrics.
    """

    def __init__(self, identities: IdentityIndex, rules: dict[str, TenantRules]) -> None:
        self.identities = identities
        self.rules = rules
        self.refusals: Counter[str] = Counter()
        self.denials: Counter[str] = Counter()
        self._matchers: dict[tuple[str, str], Matcher] = {}

    # Authenticator ---------------------------------------------------------------------------

    def authenticate(self, facts: ConnectionFacts) -> Principal | int:
        if facts.listener in TOKEN_LISTENERS:
            return self._authenticate_bridge(facts)
        if facts.listener == SERVICE_LISTENER:
            service = self.identities.authenticate_key(facts.username, facts.password, facts.client_id)
            if isinstance(service, Refusal):
                return self._refuse(facts, service)
            return self.service_principal_for(service, facts.client_id)
        leaf = facts.peer_certificates[0] if facts.peer_certificates else None
        result = self.identities.authenticate(leaf, facts.client_id, facts.username)
        if isinstance(result, Refusal):
            return self._refuse(facts, result)
        return self.principal_for(result)

    def _refuse(self, facts: ConnectionFacts, refusal: Refusal) -> int:
        self.refusals[refusal.why] += 1
        log.info("refused %r from %s: %s", facts.client_id, format_address(facts.remote_address), refusal.why)
        return refusal.reason_code

    def principal_for(self, auth: Authenticated) -> Principal:
        acl = acl_principal_of(auth.tenant, auth.device)
        return Principal(
            name=auth.device.name,
            mountpoint=auth.tenant.mountpoint,
            attributes={
                "acl": DecisionCache(self.matcher_for(acl)),
                "device_id": auth.device.id,
                "tenant_id": auth.tenant.id,
                "fingerprint": auth.certificate.fingerprint,
                "serial": auth.certificate.serial,
            },
        )

    def service_principal_for(self, auth: AuthenticatedService, client_id: str) -> Principal:
        """A back end acting in its tenant's namespace, with the rules for service <key name>.

        The ACL principal is found again from `api_key_prefix` whenever rules or the key
        change (and for a session restored after a restart), so a renamed, revoked or expired
        key loses its rights with no fixed copy left behind.
        """
        key = auth.key
        acl = AclPrincipal.for_service(auth.tenant.slug, key.name)
        return Principal(
            name=client_id,
            mountpoint=auth.tenant.mountpoint,
            attributes={
                "acl": DecisionCache(self.matcher_for(acl)),
                "tenant_id": auth.tenant.id,
                "api_key_prefix": key.prefix,
                "service": key.name,
            },
        )

    def _authenticate_bridge(self, facts: ConnectionFacts) -> Principal | int:
        signed = verify_principal(facts.password.decode("utf-8", "replace")) if facts.password else None
        if signed is None:
            self.refusals["bad bridge token"] += 1
            return BAD_USER_NAME_OR_PASSWORD
        tenant = next((t for t in self.identities.tenants.values() if t.slug == signed.tenant), None)
        if tenant is None or not tenant.enabled:
            self.refusals["bridge tenant unavailable"] += 1
            return NOT_AUTHORIZED
        acl = AclPrincipal.for_role(tenant.slug, signed.role)
        return Principal(
            name=facts.client_id,
            mountpoint=tenant.mountpoint,
            # `role` is what rebuilds `acl_principal` for a principal restored from storage.
            attributes={"acl": DecisionCache(self.matcher_for(acl)), "acl_principal": acl, "role": signed.role,
                        "tenant_id": tenant.id, "user_id": signed.user_id, "username": signed.username},
        )

    # Authorizer ------------------------------------------------------------------------------

    def authorize(self, principal: Principal, action: Action, topic: str, qos: int, retain: bool) -> Decision:
        cache = self._cache(principal)
        if cache is None:
            self.denials["unknown principal"] += 1
            return Decision.DENY
        if action is Action.PUBLISH:
            if topic[:1] == "$" and is_platform_topic(topic):
                self.denials["publish"] += 1
                return Decision.DENY
            if cache.publish(topic, qos, retain).allowed:
                return Decision.ALLOW
            self.denials["publish"] += 1
            return Decision.DENY
        decision = cache.subscribe(topic, qos)
        if not decision.allowed:
            self.denials["subscribe"] += 1
            return Decision.DENY
        return Decision.ALLOW_FILTERED if decision.partial else Decision.ALLOW

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        """The QoS a subscription gets: the request, capped by the rules' maximum QoS."""
        cache = self._cache(principal)
        if cache is None:
            return qos
        decision = cache.subscribe(topic_filter, qos)
        return qos if decision.qos is None else min(qos, decision.qos)

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        cache = self._cache(principal)
        return cache is not None and cache.deliverable(topic)

    def may_publish_retained(self, publisher: Principal, topic: str, qos: int) -> bool:
        """Whether the publisher of a retained message could publish it now (engine's
        `may_still_publish`), even long after its connection ended.

        The publisher's rights are re-derived only when the tenant's rules version or the
        publisher's identity (device or API key record, replaced on every change) moved on,
        so a delivery costs a few dictionary lookups and a cached decision.
        """
        if topic[:1] == "$" and is_platform_topic(topic):
            return False
        tenant = self.identities.tenant_by_mountpoint.get(publisher.mountpoint)
        if tenant is None or not tenant.enabled:
            return False
        attributes = publisher.attributes
        identity: object = None
        prefix = attributes.get("api_key_prefix")
        if isinstance(attributes.get("acl_principal"), AclPrincipal) or isinstance(attributes.get("role"), str):
            identity = tenant  # a signed-in user's: rights by role, for as long as the tenant
        elif isinstance(prefix, str):
            identity = self.identities.usable_key(prefix, tenant.id)
        else:
            device = self.identities.device_by_name.get((tenant.id, publisher.name))
            identity = device if device is not None and device.enabled else None
        if identity is None:
            return False
        rules = self.rules.get(tenant.slug)
        version = rules.version if rules else -1
        stamp = attributes.get("retained_stamp")
        # Identity records are replaced, never changed in place: `is` tells a change.
        if not (isinstance(stamp, tuple) and stamp[0] == version and stamp[1] is identity):
            if not self.rebind(publisher):
                return False
            attributes["retained_stamp"] = (version, identity)
        cache = attributes.get("acl")
        return isinstance(cache, DecisionCache) and cache.publish(topic, qos, True).allowed

    # Rules -------------------------------------------------------------------------------------

    def matcher_for(self, acl: AclPrincipal) -> Matcher:
        key = (acl.tenant, acl.label)
        rules = self.rules.get(acl.tenant)
        version = rules.version if rules else -1
        matcher = self._matchers.get(key)
        if matcher is None or matcher.version != version or matcher.principal != acl:
            matcher = compile_rules(acl, rules.rules if rules else (), version)
            self._matchers[key] = matcher
        return matcher

    def replace_rules(self, tenant: str, rules: TenantRules | None) -> None:
        if rules is None:
            self.rules.pop(tenant, None)
        else:
            self.rules[tenant] = rules
        for key in [k for k in self._matchers if k[0] == tenant]:
            del self._matchers[key]

    def rebind(self, principal: Principal) -> bool:
        """Recompile a live principal's matcher from current rules and identity; False if gone."""
        attributes = principal.attributes
        acl = self._acl_principal(principal)
        if acl is None:
            attributes.pop("acl", None)
            return False
        matcher = self.matcher_for(acl)
        cache = attributes.get("acl")
        if isinstance(cache, DecisionCache):
            cache.rebind(matcher)
        else:
            attributes["acl"] = DecisionCache(matcher)
        return True

    def _cache(self, principal: Principal) -> DecisionCache | None:
        cache = principal.attributes.get("acl")
        if cache is None and self.rebind(principal):
            cache = principal.attributes.get("acl")
        return cache

    def _acl_principal(self, principal: Principal) -> AclPrincipal | None:
        attributes = principal.attributes
        fixed = attributes.get("acl_principal")
        if isinstance(fixed, AclPrincipal):
            return fixed
        role = attributes.get("role")
        if isinstance(role, str):  # a signed-in user's connection, restored from storage
            tenant = self.identities.tenant_by_mountpoint.get(principal.mountpoint)
            if tenant is None or not tenant.enabled:
                return None
            attributes["acl_principal"] = fixed = AclPrincipal.for_role(tenant.slug, role)
            return fixed
        prefix = attributes.get("api_key_prefix")
        if isinstance(prefix, str):
            tenant = self.identities.tenant_by_mountpoint.get(principal.mountpoint)
            key = self.identities.usable_key(prefix, tenant.id) if tenant is not None else None
            return AclPrincipal.for_service(tenant.slug, key.name) if tenant and key else None
        identity = self._identity(principal)
        return acl_principal_of(*identity) if identity is not None else None

    def _identity(self, principal: Principal) -> tuple[TenantInfo, DeviceIdentity] | None:
        tenant = self.identities.tenant_by_mountpoint.get(principal.mountpoint)
        if tenant is None:
            return None
        device = self.identities.device_by_name.get((tenant.id, principal.name))
        if device is None:
            return None
        return tenant, device


